"""The payments pool's concurrency model, chosen by measurement.

A charge waits ~200 ms on the provider; the pool's job is to keep many of those waits in flight
on 2 cores. Each model below runs the real `payments.charge` task (`python -m workers payments
-P <type> -c <n>`) against the Stripe emulator at a 200 ms median: N orders are written as
`reserved` straight into the orders database, N charge tasks are published at once, and the
clock stops when the last order is paid (or the cap is reached). Charges/s and the pool's CPU
per charge go into docs/benchmarks.md ("Payments pool: concurrency model").

`python -m bench.payments_pool [--charges 1000] [--cap 60] [--models threads:16,threads:64,...]`
(part of `make bench`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from dataclasses import dataclass

os.environ.setdefault("DOORBUSTER_TEST_SLOT", "9")  # its own ports, vhost and databases

import asyncpg
import orjson

from bench.cpu import Usage, snapshot
from bench.report import stamp, write_section
from devtools.harness.emulator import configure
from devtools.harness.stack import DB_PREFIX, PG_SERVER, ROOT, Stack, build_stack, db_fetch
from shared.messages.orders import ChargeOrder
from shared.messaging.publisher import Publisher
from shared.messaging.wire import OutgoingTask
from workers.pools import POOLS, Pool

MODELS = "threads:16,threads:64,threads:128,prefork:2,prefork:8"


@dataclass
class Result:
    model: str
    charges: int
    paid: int
    seconds: float
    cpu: Usage

    @property
    def rate(self) -> float:
        return self.paid / self.seconds if self.seconds else 0.0


async def reserved_orders(count: int) -> list[str]:
    """`count` orders as the orders pool leaves them after a reservation: priced, reserved."""
    ids = [f"ord_{uuid.uuid4().hex}" for _ in range(count)]
    items = orjson.dumps([{"sku": "BENCH-1", "quantity": 1, "unit_price": 2500}]).decode()
    connection = await asyncpg.connect(f"{PG_SERVER}/{DB_PREFIX}_orders")
    try:
        await connection.executemany(
            "INSERT INTO orders (id, status, customer_id, customer_email, payment_method, items,"
            " total, currency) VALUES ($1, 'reserved', 'cus_bench', 'bench@example.com',"
            " 'pm_card_visa', $2::jsonb, 2500, 'usd')",
            [(order_id, items) for order_id in ids],
        )
    finally:
        await connection.close()
    return ids


async def measure(stack: Stack, model: str, charges: int, cap: float) -> Result:
    pool_type, concurrency = model.split(":")
    process = stack.processes["payments-pool"]
    base_argv = list(process.argv)
    process.argv.extend(["-P", pool_type, "-c", concurrency])
    ids = await reserved_orders(charges)
    stack.start("payments-pool")
    try:
        stack.wait_healthy()
        publisher = Publisher(stack.env["RABBITMQ_URL"])
        await publisher.connect()
        pids = {name: stack.running[name].pid for name in ("payments-pool", "stripe")}
        before = snapshot(pids)
        started = time.monotonic()
        try:
            await publisher.publish_many(
                [OutgoingTask(ChargeOrder.name, {"order_id": order_id}) for order_id in ids]
            )
        finally:
            await publisher.close()
        paid = 0
        while paid < charges and time.monotonic() - started < cap:
            await asyncio.sleep(0.25)
            rows = await db_fetch(
                "orders", "SELECT count(*) FROM orders WHERE id = ANY($1) AND status = 'paid'", ids
            )
            paid = rows[0][0]
        elapsed = time.monotonic() - started
        after = snapshot(pids)
    finally:
        stack.stop("payments-pool")
        process.argv[:] = base_argv
    return Result(model, charges, paid, elapsed, Usage.between(before, after, elapsed))


async def run(stack: Stack, models: list[str], charges: int, cap: float) -> list[Result]:
    results = []
    try:
        stack.start("stripe")
        stack.wait_healthy()
        configure(stack, latency_ms=200)
        for model in models:
            result = await measure(stack, model, charges, cap)
            results.append(result)
            print(
                f"{model:<12} {result.paid}/{charges} paid in {result.seconds:.1f} s = "
                f"{result.rate:.0f} charges/s; CPU ms per charge "
                f"{ {k: round(v, 1) for k, v in result.cpu.per_unit_ms(result.paid).items()} }",
                flush=True,
            )
    finally:
        stack.stop_all()
    return results


def write(results: list[Result], args: argparse.Namespace) -> None:
    rows = "\n".join(
        f"| {r.model.replace(':', ' x ')} | {r.paid} of {r.charges} | {r.seconds:.1f} | "
        f"{r.rate:.0f} | {r.cpu.per_unit_ms(r.paid).get('payments-pool', 0):.1f} | "
        f"{r.cpu.busy_cores:.2f} |"
        for r in results
    )
    best = max(results, key=lambda r: r.rate)
    default = POOLS[Pool.PAYMENTS]
    command = (
        f"python -m bench.payments_pool --charges {args.charges} --cap {args.cap:g} "
        f"--models {args.models}"
    )
    body = f"""
{stamp(command)}

The real `payments.charge` task, one worker process (prefork: one parent and N children),
Stripe emulator at a 200 ms median, {args.charges} reserved orders charged at once; the clock
stops at the last `paid` (or after {args.cap:g} s). CPU is the pool's own (all its processes).

| pool model | paid | seconds | charges/s | pool CPU ms per charge | pool cores busy |
| --- | ---: | ---: | ---: | ---: | ---: |
{rows}

Fastest here: **{best.model.replace(":", " x ")}** ({best.rate:.0f} charges/s). A charge is
~200 ms of waiting and a few ms of CPU, so throughput is `in-flight charges / 0.2 s` until the
CPU runs out: prefork buys in-flight charges with whole processes (memory, a connection pool
each), `threads` with threads sharing one event loop and one connection pool
(`shared/infra/aio.py`). The payments profile runs `{default.model}` with
{default.concurrency} threads per process by default and scales out by processes (KEDA);
`-c` raises the threads of one process when a provider is slower.
"""
    print(f"wrote {write_section('Payments pool: concurrency model', body)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--charges", type=int, default=1000)
    parser.add_argument("--cap", type=float, default=60)
    parser.add_argument("--models", default=MODELS)
    args = parser.parse_args()
    os.chdir(ROOT)
    stack = build_stack()  # before the event loop: it runs its own
    stack.full_db_pools()
    write(asyncio.run(run(stack, args.models.split(","), args.charges, args.cap)), args)


if __name__ == "__main__":
    main()
