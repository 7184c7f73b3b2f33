"""Expiry blames the right party: the broker is out of the orders API's reach for longer than
the reservation timeout while checkout accepts orders into the outbox, and the orders pool is
away for longer than the sweep's interval; afterwards every order is paid, once, and no sweep
message was dead-lettered.

On a stack of its own (ports + 40, its own vhost, databases and broker proxy) with the timeout
shortened to RESERVATION_TIMEOUT_SECONDS and a sweep every SWEEP_INTERVAL_SECONDS, so that many
sweeps run over orders far older than the timeout while their reserve waits in the outbox.
Before the fix the sweep cancelled them all (the timeout counted from `created_at`), and the
sweep messages published while the orders pool was away died of their 1 s expiry into
`orders.dlq` (reason `expired`)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator

import aio_pika
import pytest

from devtools.harness.emulator import intents_of
from devtools.harness.shop import Shop, unique_sku
from devtools.harness.stack import BROKER_PROXY_PORT, SITE, Stack, build_stack
from shared.messaging.topology import QueueName, dead_letter_queue
from tests.e2e.test_outbox_recovery import wait_ready
from tests.support.tcp_proxy import CuttableProxy

pytestmark = pytest.mark.timeout(240)

ORDERS = 5
RESERVATION_TIMEOUT_SECONDS = 3
SWEEP_INTERVAL_SECONDS = 1
# The broker is out of the API's reach for this long: more than twice the timeout.
OUTAGE_SECONDS = 3 * RESERVATION_TIMEOUT_SECONDS
# The orders pool is away for this long: several sweep intervals.
POOL_AWAY_SECONDS = 4 * SWEEP_INTERVAL_SECONDS

EXPIRY_PORT_OFFSET = 40
EXPIRY_PROXY_PORT = BROKER_PROXY_PORT + 40


@pytest.fixture(scope="module")
def expiry_proxy() -> Iterator[CuttableProxy]:
    proxy = CuttableProxy(EXPIRY_PROXY_PORT, "127.0.0.1", SITE.amqp_port)
    proxy.start()
    yield proxy
    proxy.close()


@pytest.fixture(scope="module")
def expiry_stack(expiry_proxy: CuttableProxy) -> Iterator[Stack]:
    """The whole stack with a short reservation timeout and frequent sweeps; its orders API
    reaches the broker through `expiry_proxy`."""
    site = SITE.beside("expiry", EXPIRY_PORT_OFFSET)
    running = build_stack(site, broker_proxy=False)
    running.env["RESERVATION_TIMEOUT_SECONDS"] = str(RESERVATION_TIMEOUT_SECONDS)
    running.env["RESERVATION_SWEEP_INTERVAL_SECONDS"] = str(SWEEP_INTERVAL_SECONDS)
    running.processes["orders-api"].env["RABBITMQ_URL"] = (
        f"amqp://guest:guest@127.0.0.1:{EXPIRY_PROXY_PORT}/{site.vhost}"
    )
    with running.started():
        yield running


@pytest.fixture(scope="module")
async def expiry_shop(expiry_stack: Stack) -> AsyncIterator[Shop]:
    async with Shop(expiry_stack) as client:
        yield client


async def dead_letters(stack: Stack, queue: QueueName) -> list[str]:
    """The task names in `queue`'s dead-letter queue (read, then put back)."""
    connection = await aio_pika.connect(stack.env["RABBITMQ_URL"])
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(dead_letter_queue(queue), passive=True)
        names = []
        while message := await declared.get(no_ack=False, fail=False):
            names.append(str((message.headers or {}).get("task")))
        await channel.close()  # requeues what was read
        return names
    finally:
        await connection.close()


def sweeps_run(stack: Stack) -> int:
    """How many expiry sweeps the orders pool ran (its `task succeeded` lines)."""
    lines = (stack.logs / "orders-pool.log").read_text(errors="replace").splitlines()
    records = [json.loads(line) for line in lines if line[:1] == "{"]
    return sum(
        r.get("task") == "orders.expire_reservations" and r.get("event") == "task succeeded"
        for r in records
    )


async def test_orders_the_system_kept_waiting_past_the_timeout_are_paid_not_expired(
    expiry_stack: Stack, expiry_shop: Shop, expiry_proxy: CuttableProxy
):
    shop, stack = expiry_shop, expiry_stack
    sku = unique_sku("BLAME")
    await shop.put_product(sku, stock=ORDERS)
    await wait_ready(shop.orders, 200)

    expiry_proxy.cut()
    try:
        await wait_ready(shop.orders, 503)
        responses = [await shop.place_order([(sku, 1)]) for _ in range(ORDERS)]
        assert [response.status_code for response in responses] == [202] * ORDERS
        order_ids = [response.json()["id"] for response in responses]
        # Beat keeps sending sweeps, which run over orders older than the timeout...
        await asyncio.sleep(OUTAGE_SECONDS - POOL_AWAY_SECONDS)
        # ... and while the orders pool is away they wait in its queue, longer than the
        # interval that used to be their expiry.
        stack.stop("orders-pool")
        try:
            await asyncio.sleep(POOL_AWAY_SECONDS)
        finally:
            stack.start("orders-pool")
        await asyncio.sleep(2 * SWEEP_INTERVAL_SECONDS)  # the queued sweeps run
        statuses = {(await shop.order(order_id))["status"] for order_id in order_ids}
        assert statuses == {"pending"}, "the sweep expired orders waiting in the outbox"
        assert sweeps_run(stack) >= OUTAGE_SECONDS // (2 * SWEEP_INTERVAL_SECONDS)
    finally:
        expiry_proxy.restore()

    started = time.monotonic()
    orders = await asyncio.gather(*(shop.wait_final(order_id, 60) for order_id in order_ids))
    print(f"{ORDERS} orders final {time.monotonic() - started:.1f}s after the broker came back")
    assert [order["status"] for order in orders] == ["paid"] * ORDERS
    for order in orders:
        succeeded = [pi for pi in intents_of(stack, order["id"]) if pi.status == "succeeded"]
        assert len(succeeded) == 1
    await shop.wait_stock(sku, stock=0, reserved=0)
    assert await dead_letters(stack, QueueName.ORDERS) == []
