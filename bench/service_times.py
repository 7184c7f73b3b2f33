"""Measure each pool's per-task service time on the real stack, for the KEDA thresholds.

    DOORBUSTER_TEST_SLOT=2 .venv/bin/python -m bench.service_times [--orders 300]

Starts the test stack (devtools/harness/stack.py: its own ports, vhost and databases) with the
Stripe emulator at a 200 ms median latency, places a burst of orders so a backlog forms on
every queue, waits for all of them to be paid and mailed, and reads each pool's /metrics: mean
run time per task (`doorbuster_task_run_seconds`), CPU seconds per task
(`process_cpu_seconds_total`), and the throughput one worker reached. deploy/README.md turns
these into ScaledObject thresholds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import httpx

from devtools.harness.metrics import scrape
from devtools.harness.shop import Shop, unique_sku
from devtools.harness.stack import build_stack
from workers.pools import POOLS, Pool

POOL_TASKS = {
    Pool.PAYMENTS: ["inventory.reserved"],
    Pool.ORDERS: ["inventory.reserve", "inventory.commit_many"],
    Pool.NOTIFICATIONS: ["notifications.send_order_mail"],
}


def totals(url: str, tasks: list[str]) -> dict[str, float]:
    samples = scrape(url)
    out = {"cpu": 0.0, "count": 0.0, "run": 0.0}
    for (name, labels), value in samples.items():
        task = dict(labels).get("task")
        if name == "process_cpu_seconds_total":
            out["cpu"] = value
        elif task in tasks and name == "doorbuster_task_run_seconds_count":
            out["count"] += value
        elif task in tasks and name == "doorbuster_task_run_seconds_sum":
            out["run"] += value
    return out


async def burst(shop: Shop, orders: int) -> float:
    sku = unique_sku("BENCH")
    await shop.put_product(sku, stock=orders)
    limit = asyncio.Semaphore(10)

    async def one() -> str:
        async with limit:
            return (await shop.place_order([(sku, 1)])).json()["id"]

    async def done(order_id: str) -> None:
        async with limit:
            await shop.wait_final(order_id, timeout=600)
            await shop.wait_mail(order_id, "order_confirmation", 600)

    started = time.perf_counter()
    ids = await asyncio.gather(*(one() for _ in range(orders)))
    # Poll the last order first: when it is done, nearly all are.
    await done(ids[-1])
    await asyncio.gather(*(done(order_id) for order_id in ids))
    return time.perf_counter() - started


async def measure(stack, orders: int) -> dict:
    shop = Shop(stack)
    urls = {pool: stack.processes[f"{pool.value}-pool"].metrics_url for pool in POOL_TASKS}
    try:
        await burst(shop, 20)  # warm up: connections, imports, first queries
        before = {pool: totals(urls[pool], tasks) for pool, tasks in POOL_TASKS.items()}
        wall = await burst(shop, orders)
        after = {pool: totals(urls[pool], tasks) for pool, tasks in POOL_TASKS.items()}
    finally:
        await shop.close()
    report = {"orders": orders, "wall_seconds": round(wall, 1), "pools": {}}
    for pool in POOL_TASKS:
        count = after[pool]["count"] - before[pool]["count"]
        run = after[pool]["run"] - before[pool]["run"]
        cpu = after[pool]["cpu"] - before[pool]["cpu"]
        concurrency = POOLS[pool].concurrency
        mean = run / count
        cpu_per_task = cpu / count
        report["pools"][pool.value] = {
            "tasks": int(count),
            "mean_run_ms": round(mean * 1000, 1),
            "cpu_ms_per_task": round(cpu_per_task * 1000, 1),
            "concurrency": concurrency,
            "io_bound_capacity_per_s": round(concurrency / mean, 1),
            "cpu_bound_capacity_per_s": round(1 / cpu_per_task, 1),
            "observed_per_s": round(count / wall, 1),
        }
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=300)
    parser.add_argument("--latency-ms", default="200")
    args = parser.parse_args()
    stack = build_stack()
    stack.full_db_pools()
    # PostgreSQL here serves other stacks too (max_connections 100): the APIs, which only
    # answer this script's polls, get small pools; the pools keep theirs (one per thread).
    for service in ("orders", "inventory", "notifications"):
        stack.processes[f"{service}-api"].env.update(DB_POOL_SIZE="3", DB_MAX_OVERFLOW="2")
    stack.processes["stripe"].env["STRIPE_EMULATOR_LATENCY_MS"] = args.latency_ms
    stack.processes["orders-api"].env.pop("RABBITMQ_URL")  # no test proxy here: the broker
    try:
        stack.start_all()
        print(json.dumps(asyncio.run(measure(stack, args.orders)), indent=2))
    finally:
        stack.stop_all()
    httpx.Client().close()


if __name__ == "__main__":
    main()
