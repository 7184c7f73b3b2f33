-- POST a checkout with a fresh Idempotency-Key on every request; print JSON stats at the end.
-- The run's unique prefix comes as the script's argument: Lua's math.random is unseeded, so a
-- random prefix would repeat across runs and turn every later run into idempotent replays.
local counter = 0
local body = '{"customer": {"id": "cus_bench", "email": "bench@example.com"}, ' ..
  '"items": [{"sku": "BENCH-1", "quantity": 1}], "payment_method": "pm_card_visa"}'

local prefix = "run"
init = function(args) prefix = args[1] or prefix end

request = function()
  counter = counter + 1
  return wrk.format("POST", nil, {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer dev-storefront",
    ["Idempotency-Key"] = string.format("bench-%s-%d", prefix, counter),
  }, body)
end

done = function(summary, latency, requests)
  local errors = summary.errors.status + summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout
  io.write(string.format(
    'WRKJSON {"requests": %d, "seconds": %.3f, "errors": %d, "p50_ms": %.2f, "p99_ms": %.2f}\n',
    summary.requests, summary.duration / 1e6, errors,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
