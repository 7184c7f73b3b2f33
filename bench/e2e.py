"""End to end: fully paid orders per second, with the Stripe emulator at a 200 ms median.

The whole stack (three APIs, four pools, emulator, sink) runs on its own ports, vhost and
databases. An open-loop storefront places orders at a fixed rate for a window; a rate is
*sustained* when every order of the window is paid within a grace period and the p95 from
accept to paid stays under 5 s. Rates rise until one is not sustained. The audit runs last.

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


from bench.report import stamp, write_section
from ops.audit import render, run_audit
from shared.config import Settings
from tests.support.emulator import configure
from tests.support.shop import FINAL, Shop, unique_sku
from tests.support.stack import ROOT, Stack, build_stack

GRACE = 30.0


@dataclass
class Window:
    rate: float
    seconds: float
    placed: int
    paid: int
    paid_per_second: float
    p50_s: float
    p95_s: float

    @property
    def sustained(self) -> bool:
        return self.paid == self.placed and self.p95_s < 5.0


async def window(shop: Shop, sku: str, rate: float, seconds: float) -> Window:
    accepted: dict[str, float] = {}
    paid_at: dict[str, float] = {}

    async def place() -> None:
        response = await shop.place_order([(sku, 1)])
        if response.status_code == 202:
            accepted[response.json()["id"]] = time.monotonic()

    started = time.monotonic()
    tasks = []
    for n in range(int(rate * seconds)):
        await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
        tasks.append(asyncio.create_task(place()))
    await asyncio.gather(*tasks)
    deadline = time.monotonic() + GRACE
    while len(paid_at) < len(accepted) and time.monotonic() < deadline:
        waiting = [order_id for order_id in accepted if order_id not in paid_at]
        for start in range(0, len(waiting), 50):
            orders = await asyncio.gather(*(shop.order(i) for i in waiting[start : start + 50]))
            now = time.monotonic()
            paid_at.update({o["id"]: now for o in orders if o["status"] in FINAL})
        await asyncio.sleep(0.25)
    delays = sorted(paid_at[i] - accepted[i] for i in paid_at)
    span = (max(paid_at.values()) - started) if paid_at else seconds
    return Window(
        rate,
        seconds,
        placed=len(accepted),
        paid=len(paid_at),
        paid_per_second=len(paid_at) / max(span, seconds),
        p50_s=statistics.median(delays) if delays else float("nan"),
        p95_s=delays[int(len(delays) * 0.95) - 1] if delays else float("nan"),
    )


async def ladder(stack: Stack, rates: list[float], seconds: float) -> tuple[list[Window], str]:
    configure(stack, latency_ms=200)
    shop = Shop(stack)
    since = datetime.now(UTC)
    results: list[Window] = []
    try:
        sku = unique_sku("E2E")
        await shop.put_product(sku, stock=10_000_000, price=2500)
        for rate in rates:
            result = await window(shop, sku, rate, seconds)
            results.append(result)
            print(f"{rate:6.0f}/s offered: {result}", flush=True)
            if not result.sustained:
                break
        settings = Settings(
            rabbitmq_url=stack.env["RABBITMQ_URL"],
            database_url=stack.env["DATABASE_URL"],
            stripe_api_base=stack.stripe_url,
        )
        await asyncio.sleep(5)  # confirmations of the last window
        verdict = render(await run_audit(settings, since, str(stack.maildir)))
    finally:
        await shop.close()
    return results, verdict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--rates", default="10,20,40,80,160")
    parser.add_argument("--payments-concurrency", type=int, default=64)
    args = parser.parse_args()
    os.chdir(ROOT)
    stack = build_stack()
    stack.processes["orders-api"].env.pop("RABBITMQ_URL", None)
    payments = stack.processes["payments-pool"]
    payments.argv.extend(["--concurrency", str(args.payments_concurrency)])
    try:
        stack.start_all()
        results, verdict = asyncio.run(
            ladder(stack, [float(rate) for rate in args.rates.split(",")], args.seconds)
        )
    finally:
        stack.stop_all()
    write(results, verdict, args)


def write(results: list[Window], verdict: str, args: argparse.Namespace) -> None:
    best = max((w.paid_per_second for w in results if w.sustained), default=0.0)
    rows = "\n".join(
        f"| {w.rate:.0f} | {w.placed} | {w.paid} | {w.paid_per_second:.1f} | {w.p50_s:.2f} | "
        f"{w.p95_s:.2f} | {'yes' if w.sustained else 'no'} |"
        for w in results
    )
    command = (
        f"python -m bench.e2e --seconds {args.seconds:g} --rates {args.rates} "
        f"--payments-concurrency {args.payments_concurrency}"
    )
    body = f"""
{stamp(command)}

Whole stack on one machine (3 APIs, 4 pools with one process each, the payments pool with
`threads` x {args.payments_concurrency}, emulator at a 200 ms median, SMTP sink, PostgreSQL,
RabbitMQ and the load generator). Offered rates rise; a window is sustained when all its orders
are paid within {GRACE:.0f} s and accept-to-paid p95 < 5 s.

| offered/s | placed | paid | paid/s | accept->paid p50 s | p95 s | sustained |
| ---: | ---: | ---: | ---: | ---: | ---: | --- |
{rows}

Highest sustained: **{best:.1f} paid orders/s** (target 250/s).

Audit after the run:

```
{verdict}
```
"""
    print(f"wrote {write_section('End to end: paid orders per second', body)}")


if __name__ == "__main__":
    main()
