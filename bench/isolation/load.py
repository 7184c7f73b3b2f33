"""One deployment's windows of checkouts, with and without the campaign, and what they cost."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import time
from pathlib import Path

import aio_pika
import httpx

from bench.isolation.cells import BULK_RATE, SINGLE, Cell, shown
from bench.isolation.single_queue import QUEUE
from bench.openloop import at_rate
from devtools.harness.emulator import configure
from devtools.harness.shop import ADMIN, FINAL, Shop, unique_sku
from devtools.harness.stack import DB_PREFIX, Stack, db_fetch
from shared.messaging.topology import QueueName

WARM_UP_ORDERS = 10


async def import_subscribers(stack: Stack, mails: int) -> float:
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=stack.url("notifications"), timeout=300) as client:

        async def chunk(start: int) -> None:
            people = [{"email": f"fan{n:07d}@example.com"} for n in range(start, start + 10_000)]
            response = await client.post(
                "/v1/subscribers", json={"subscribers": people[: mails - start]}, headers=ADMIN
            )
            response.raise_for_status()

        starts = list(range(0, mails, 10_000))
        for at in range(0, len(starts), 2):  # two requests at a time
            await asyncio.gather(*(chunk(s) for s in starts[at : at + 2]))
    return time.monotonic() - started


async def offer(shop: Shop, sku: str, rate: float, seconds: float) -> tuple[list[str], int]:
    """Open loop: one checkout every 1/rate s, whatever the answers take."""
    accepted: list[str] = []
    refused = 0

    async def place() -> None:
        nonlocal refused
        response = await shop.place_order([(sku, 1)])
        if response.status_code == 202:
            accepted.append(response.json()["id"])
        else:
            refused += 1

    await at_rate(rate, seconds, place)
    return accepted, refused


async def wait_final(ids: list[str], deadline: float) -> None:
    while time.monotonic() < deadline:
        rows = await db_fetch(
            "orders",
            "SELECT count(*) AS n FROM orders WHERE id = ANY($1) AND status = ANY($2)",
            ids,
            list(FINAL),
        )
        if rows[0]["n"] == len(ids):
            return
        await asyncio.sleep(0.5)


async def paid_latencies(ids: list[str]) -> list[float]:
    rows = await db_fetch(
        "orders",
        "SELECT extract(epoch FROM updated_at - created_at) AS s FROM orders"
        " WHERE id = ANY($1) AND status = 'paid'",
        ids,
    )
    return [float(row["s"]) for row in rows]


class DepthSampler:
    """Ready messages per queue, once a second, by passive declares (what load shedding reads)."""

    def __init__(self, amqp_url: str, queues: list[str]):
        self.amqp_url, self.queues = amqp_url, queues
        self.samples: dict[str, list[int]] = {queue: [] for queue in queues}
        self._task: asyncio.Task[None] | None = None
        self._done = asyncio.Event()

    async def __aenter__(self) -> DepthSampler:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *_: object) -> None:
        self._done.set()  # not a cancel: a declare cut short makes aio-pika log a warning
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        connection = await aio_pika.connect(self.amqp_url)
        try:
            channel = await connection.channel()
            while not self._done.is_set():
                for queue in self.queues:
                    declared = await channel.declare_queue(queue, passive=True)
                    self.samples[queue].append(declared.declaration_result.message_count or 0)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._done.wait(), timeout=1)
        finally:
            await connection.close()


async def campaign_sent(stack: Stack, campaign_id: str | None) -> int:
    if campaign_id is None:
        return 0
    async with httpx.AsyncClient(base_url=stack.url("notifications"), timeout=60) as client:
        response = await client.get(f"/v1/campaigns/{campaign_id}", headers=ADMIN)
        response.raise_for_status()
        return int(response.json()["sent"])


async def our_processes(stack: Stack) -> dict[int, str]:
    """pid -> name: the stack's processes and the PostgreSQL backends serving its databases."""
    pids = {popen.pid: name for name, popen in stack.running.items()}
    rows = await db_fetch(
        "orders",
        "SELECT pid, datname FROM pg_stat_activity WHERE datname LIKE $1",
        f"{DB_PREFIX}_%",
    )
    for row in rows:
        pids[row["pid"]] = f"postgres ({row['datname'].removeprefix(DB_PREFIX + '_')})"
    return pids


def cpu_seconds(pids: dict[int, str]) -> dict[int, float]:
    """User + system CPU seconds of each process so far (all its threads)."""
    ticks = os.sysconf("SC_CLK_TCK")
    seconds = {}
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        seconds[pid] = (int(fields[11]) + int(fields[12])) / ticks
    return seconds


async def measure(
    stack: Stack, shop: Shop, sku: str, cell: Cell, args: argparse.Namespace, campaign: str | None
) -> None:
    """One window of load into `cell`: offer, wait for its orders (capped), read them."""
    queues = [queue.value for queue in QueueName] + ([QUEUE] if cell.deployment == SINGLE else [])
    mails_before = await campaign_sent(stack, campaign)
    pids = await our_processes(stack)
    cpu_before, clock = cpu_seconds(pids), time.monotonic()
    async with DepthSampler(stack.env["RABBITMQ_URL"], queues) as sampler:
        ids, refused = await offer(shop, sku, args.rate, args.seconds / 2)
        await wait_final(ids, time.monotonic() + args.cap)
    latencies = await paid_latencies(ids)
    cell.add(ids, latencies, {q: s for q, s in sampler.samples.items() if any(s)})
    cell.refused += refused
    cell.mails_sent += await campaign_sent(stack, campaign) - mails_before
    cell.seconds += time.monotonic() - clock
    for pid, spent in cpu_seconds(pids).items():
        if pid in cpu_before:  # a backend that came and went in between is not counted
            cell.cpu[pids[pid]] = cell.cpu.get(pids[pid], 0.0) + spent - cpu_before[pid]
    print(
        f"{cell.deployment:12s} backlog={cell.backlog!s:5s} placed={len(ids)} "
        f"paid={len(latencies)} p99 {shown(cell.windows[-1], args.cap)} "
        f"load {os.getloadavg()[0]:.1f}",
        flush=True,
    )


async def start_campaign(stack: Stack, mails: int) -> str:
    """POST the campaign, then wait until the bulk path is sending (a second of mail)."""
    async with httpx.AsyncClient(base_url=stack.url("notifications"), timeout=120) as client:
        response = await client.post(
            "/v1/campaigns",
            json={"subject": "Doorbuster deals", "body": "Everything 50% off, today only."},
            headers=ADMIN,
        )
        response.raise_for_status()
        campaign = response.json()
    assert campaign["total"] == mails, campaign
    for _ in range(120):  # at most a minute
        if await campaign_sent(stack, campaign["id"]) >= BULK_RATE:
            break
        await asyncio.sleep(0.5)
    return str(campaign["id"])


async def stop_campaign(stack: Stack, campaign_id: str, queue: str) -> None:
    async with httpx.AsyncClient(base_url=stack.url("notifications"), timeout=60) as client:
        await client.post(f"/v1/campaigns/{campaign_id}/cancel", headers=ADMIN)
    connection = await aio_pika.connect(stack.env["RABBITMQ_URL"])
    try:
        channel = await connection.channel()
        await (await channel.declare_queue(queue, passive=True)).purge()
    finally:
        await connection.close()


async def warm_up(shop: Shop, sku: str) -> None:
    """Connections, runtimes and clients are made on first use: not in the measurement."""
    ids, _ = await offer(shop, sku, rate=WARM_UP_ORDERS, seconds=1)
    await wait_final(ids, time.monotonic() + 60)


async def cells_of(stack: Stack, deployment: str, args: argparse.Namespace) -> list[Cell]:
    configure(stack, latency_ms=args.stripe_latency_ms)
    shop = Shop(stack)
    try:
        sku = unique_sku("ISO")
        await shop.put_product(sku, stock=10_000_000, price=2500)
        took = await import_subscribers(stack, args.mails)
        print(f"{deployment}: {args.mails} subscribers imported in {took:.0f} s", flush=True)
        await warm_up(shop, sku)
        quiet, loaded = Cell(deployment, backlog=False), Cell(deployment, backlog=True)
        # Windows in the order quiet, backlog, backlog, quiet: a load on the machine that
        # drifts linearly during the run weighs the same on both conditions.
        await measure(stack, shop, sku, quiet, args, None)
        campaign_id = await start_campaign(stack, args.mails)
        try:
            for _ in range(2):
                await measure(stack, shop, sku, loaded, args, campaign_id)
        finally:
            bulk = QUEUE if deployment == SINGLE else QueueName.BULK.value
            await stop_campaign(stack, campaign_id, bulk)
        await asyncio.sleep(2)  # running batches stop at their next chunk
        await measure(stack, shop, sku, quiet, args, None)
    finally:
        await shop.close()
    return [quiet, loaded]
