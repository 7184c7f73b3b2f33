"""End to end: fully paid orders per second, with the Stripe emulator at a 200 ms median.

The whole stack (three APIs, four pools, emulator, sink) runs on its own ports, vhost and
databases. An open-loop storefront places orders at a fixed rate for a window; a rate is
*sustained* when every order of the window is paid within a grace period and the p95 from
accept to paid stays under 1 s (an unloaded order takes about 0.3 s: one 200 ms charge and
the hops around it; a p95 over 1 s means a backlog is building). Rates rise until one is
not sustained. The audit runs last.

`python -m bench.e2e [--seconds 60] [--rates 10,20,40,80] [--payments-concurrency 64]`
(`make bench` uses 300-second windows for the top rate only with `--full`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime

os.environ.setdefault("DOORBUSTER_TEST_SLOT", "9")


from bench.cpu import Usage, snapshot
from bench.openloop import at_rate
from bench.report import stamp, write_section
from devtools.harness.emulator import configure
from devtools.harness.shop import FINAL, Shop, unique_sku
from devtools.harness.stack import ROOT, Stack, build_stack, db_fetch
from ops.audit import render, run_audit
from workers.pools import POOLS

GRACE = 30.0
# 5 s let a 30-second window pass while a backlog grew (p50 2 s at 25/s on 2026-11-25), and
# the five-minute hold at that rate then failed.
SUSTAINED_P95_S = 1.0


@dataclass
class Window:
    rate: float
    seconds: float
    placed: int
    paid: int
    paid_per_second: float
    p50_s: float
    p95_s: float
    cpu: Usage | None = None

    @property
    def sustained(self) -> bool:
        return self.paid == self.placed and self.p95_s < SUSTAINED_P95_S


def stack_pids(stack: Stack) -> dict[str, int]:
    return {name: popen.pid for name, popen in stack.running.items()}


async def window(stack: Stack, shop: Shop, sku: str, rate: float, seconds: float) -> Window:
    accepted: dict[str, float] = {}

    async def place() -> None:
        response = await shop.place_order([(sku, 1)])
        if response.status_code == 202:
            accepted[response.json()["id"]] = time.monotonic()

    cpu_before = snapshot(stack_pids(stack))
    started = time.monotonic()
    await at_rate(rate, seconds, place)
    # Accept and paid times come from the orders database (`created_at` at the checkout's
    # commit, `updated_at` when the order turned paid: one clock). Polling the API instead put
    # the load generator's own GETs on the path it measures, and saw an order paid only when
    # it looked, long after the fact.
    deadline, final = time.monotonic() + GRACE, {}
    while time.monotonic() < deadline:
        rows = await db_fetch(
            "orders",
            "SELECT id, status, created_at, updated_at FROM orders WHERE id = ANY($1)",
            list(accepted),
        )
        final = {row["id"]: row for row in rows if row["status"] in FINAL}
        if len(final) == len(accepted):
            break
        await asyncio.sleep(1)
    paid = [row for row in final.values() if row["status"] == "paid"]
    cpu = Usage.between(cpu_before, snapshot(stack_pids(stack)), time.monotonic() - started)
    delays = sorted((row["updated_at"] - row["created_at"]).total_seconds() for row in paid)
    span = (
        (max(r["updated_at"] for r in paid) - min(r["created_at"] for r in paid)).total_seconds()
        if paid
        else seconds
    )
    paid_at = {row["id"]: row for row in paid}
    return Window(
        rate,
        seconds,
        placed=len(accepted),
        paid=len(paid_at),
        paid_per_second=len(paid_at) / max(span, seconds),
        p50_s=statistics.median(delays) if delays else float("nan"),
        p95_s=delays[int(len(delays) * 0.95) - 1] if delays else float("nan"),
        cpu=cpu,
    )


async def ladder(
    stack: Stack, rates: list[float], seconds: float, hold: float
) -> tuple[list[Window], Window | None, str]:
    configure(stack, latency_ms=200)
    shop = Shop(stack)
    since = datetime.now(UTC)
    results: list[Window] = []
    try:
        sku = unique_sku("E2E")
        await shop.put_product(sku, stock=10_000_000, price=2500)
        # Warm up (connections, prepared statements, the emulator): not part of any window.
        for response in await asyncio.gather(*(shop.place_order([(sku, 1)]) for _ in range(20))):
            await shop.wait_final(response.json()["id"], timeout=60)
        for rate in rates:
            result = await window(stack, shop, sku, rate, seconds)
            results.append(result)
            print(f"{rate:6.0f}/s offered: {result}", flush=True)
            if not result.sustained:
                break
        sustained = sorted((w.rate for w in results if w.sustained), reverse=True)
        held = None
        # A 30-second window can pass at a rate five minutes cannot hold (a backlog that grows
        # slowly): then the hold steps down one rung and tries once more.
        for rate in sustained[:2] if hold else []:
            if held is not None:
                results.append(held)  # the failed hold stays in the table
            held = await window(stack, shop, sku, rate, hold)
            print(f"held {held.rate:.0f}/s for {hold:.0f} s: {held}", flush=True)
            if held.sustained:
                break
        settings = stack.settings()
        await asyncio.sleep(5)  # confirmations of the last window
        verdict = render(await run_audit(settings, since, str(stack.maildir)))
    finally:
        await shop.close()
    return results, held, verdict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--hold", type=float, default=300)
    # Steps of 5 where this machine saturates (about 20 paid/s), wider above.
    parser.add_argument("--rates", default="10,15,20,25,30,40,60")
    parser.add_argument("--payments-concurrency", type=int, default=64)
    args = parser.parse_args()
    os.chdir(ROOT)
    stack = build_stack()
    stack.processes["orders-api"].env.pop("RABBITMQ_URL", None)
    payments = stack.processes["payments-pool"]
    payments.argv.extend(["--concurrency", str(args.payments_concurrency)])
    try:
        stack.start_all()
        rates = [float(rate) for rate in args.rates.split(",")]
        results, held, verdict = asyncio.run(ladder(stack, rates, args.seconds, args.hold))
        pools = pool_settings(stack)
    finally:
        stack.stop_all()
    write(results, held, verdict, pools, args)


def pool_settings(stack: Stack) -> dict[str, str]:
    """Each pool's effective settings: its profile (workers/pools.py) and the command line
    flags this run added on top."""
    settings = {}
    for pool, profile in POOLS.items():
        process = stack.processes.get(f"{pool.value}-pool")
        if process is None:
            continue
        flags = process.argv[process.argv.index(pool.value) + 1 :]
        extra = [flag for flag in flags if flag in ("--concurrency", "-c", "-P", "--pool")]
        settings[pool.value] = (
            f"{profile.model} x {profile.concurrency}, prefetch "
            f"{profile.prefetch_multiplier}, 1 process"
            + (f"; run with {' '.join(flags[flags.index(extra[0]) :][:2])}" if extra else "")
        )
    return settings


def _row(w: Window) -> str:
    busy = f"{w.cpu.busy_cores:.2f}" if w.cpu else "?"
    return (
        f"| {w.rate:.0f} | {w.seconds:.0f} | {w.placed} | {w.paid} | {w.paid_per_second:.1f} | "
        f"{w.p50_s:.2f} | {w.p95_s:.2f} | {busy} | {'yes' if w.sustained else 'no'} |"
    )


def write(
    results: list[Window],
    held: Window | None,
    verdict: str,
    pools: dict[str, str],
    args: argparse.Namespace,
) -> None:
    windows = results + ([held] if held else [])
    best = max((w.paid_per_second for w in windows if w.sustained), default=0.0)
    profiled = held or next((w for w in reversed(results) if w.sustained), None)
    rows = "\n".join(_row(w) for w in windows)
    pool_rows = "\n".join(f"| {name} | {setting} |" for name, setting in pools.items())
    command = (
        f"python -m bench.e2e --seconds {args.seconds:g} --rates {args.rates} "
        f"--hold {args.hold:g} --payments-concurrency {args.payments_concurrency}"
    )
    held_line = (
        f"Held for {held.seconds:.0f} s at {held.rate:.0f}/s offered: {held.paid} of "
        f"{held.placed} paid, {held.paid_per_second:.1f} paid/s, accept->paid p50 "
        f"{held.p50_s:.2f} s / p95 {held.p95_s:.2f} s, sustained: "
        f"{'yes' if held.sustained else 'no'}."
        if held
        else "No hold window ran."
    )
    profile = (
        f"""Where the CPU went in the {"hold" if held else "last sustained"} window
({profiled.paid} paid orders; bench/cpu.py reads psutil per process):

{profiled.cpu.table(profiled.paid, "paid order")}

At {sum(profiled.cpu.per_unit_ms(profiled.paid).values()):.1f} CPU ms per paid order, this
machine's {os.cpu_count()} cores cap the whole pipeline at about
**{profiled.cpu.ceiling(profiled.paid):.0f} paid orders/s** even with nothing else running."""
        if profiled and profiled.cpu and profiled.paid
        else "No window was sustained: no profile."
    )
    body = f"""
{stamp(command)}

Whole stack on one machine (3 APIs, 4 pools with one process each, emulator at a 200 ms
median, SMTP sink, PostgreSQL, RabbitMQ and the load generator). Offered rates rise; a window is
sustained when all its orders are paid within {GRACE:.0f} s and accept-to-paid
p95 < {SUSTAINED_P95_S:g} s. Then the highest sustained rate is held.

| offered/s | window s | placed | paid | paid/s | to paid p50 s | p95 s | busy cores | sustained |
| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |
{rows}

{held_line} Highest sustained: **{best:.1f} paid orders/s** (target 250/s).

{profile}

Pool settings of the run:

| pool | profile (workers/pools.py) and overrides |
| --- | --- |
{pool_rows}

Audit after the run:

```
{verdict}
```
"""
    print(f"wrote {write_section('End to end: paid orders per second', body)}")


if __name__ == "__main__":
    main()
