"""An orders API on its own (production keys, a database path the test can cut, its own
vhost, tiny shedding limits): a database outage is 503 + Retry-After, never 500, and /readyz
recovers without a restart; a backlogged queue sheds checkout with 503 + Retry-After until it
drains; and nothing secret or personal reaches its log."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import aio_pika
import httpx
import pytest

from devtools.harness.stack import DB_PREFIX, SLOT, VHOST, Stack, rabbitmqctl
from shared.messaging.topology import TASK_EXCHANGE, QueueName
from tests.support.isolated import ApiProcess, fresh_vhost, isolated_port
from tests.support.tcp_proxy import CuttableProxy

DB_PROXY_PORT = 35432 + SLOT * 100
SHED_VHOST = f"{VHOST}-degraded"
STOREFRONT_KEY, ADMIN_KEY = "sf-iso-secret-7f3a", "ad-iso-secret-91bc"
STOREFRONT = {"Authorization": f"Bearer {STOREFRONT_KEY}"}
SHED_LIMIT = 5
RESERVATION_TIMEOUT = 120  # checkout sheds while the oldest charge waited over 60 s
RETRY_AFTER = "3"
EMAIL = "degraded.customer@example.com"
# A storefront key lists the orders of one customer (the unfiltered list is admin only).
ORDERS_OF_CUSTOMER = "/v1/orders?customer_id=cus_degraded"


@pytest.fixture(scope="module")
def db_proxy() -> Iterator[CuttableProxy]:
    proxy = CuttableProxy(DB_PROXY_PORT, "127.0.0.1", 5432)
    proxy.start()
    yield proxy
    proxy.close()


@pytest.fixture(scope="module")
def orders_api(stack: Stack, db_proxy: CuttableProxy) -> Iterator[ApiProcess]:
    fresh_vhost(SHED_VHOST)
    env = {
        **stack.env,
        # Configured keys (not the dev ones); not production, which refuses the local
        # broker's guest user and the Stripe emulator this stack runs on.
        "DOORBUSTER_ENV": "test",
        "STOREFRONT_API_KEYS": STOREFRONT_KEY,
        "ADMIN_API_KEYS": ADMIN_KEY,
        "ORDERS_DATABASE_URL": (
            f"postgresql+asyncpg://postgres@127.0.0.1:{DB_PROXY_PORT}/{DB_PREFIX}_orders"
        ),
        "RABBITMQ_URL": f"amqp://guest:guest@127.0.0.1:5672/{SHED_VHOST}",
        "SHED_LIMIT_ORDERS": str(SHED_LIMIT),
        "RESERVATION_TIMEOUT_SECONDS": str(RESERVATION_TIMEOUT),
        "SHED_PAYMENTS_WAIT_FRACTION": "0.5",
        "SHED_REFRESH_SECONDS": "0.2",
        "SHED_RETRY_AFTER_SECONDS": RETRY_AFTER,
        # Its relay shares the stack's outbox table: keep it off the stack's rows.
        "OUTBOX_RELAY_GRACE_SECONDS": "3600",
    }
    api = ApiProcess("orders", isolated_port(0), env, stack.logs / "orders-api-isolated.log")
    api.start()
    yield api
    api.stop()
    rabbitmqctl("delete_vhost", SHED_VHOST)


@pytest.fixture
async def client(orders_api: ApiProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=orders_api.url, timeout=15) as http:
        yield http


def order_body() -> dict:
    return {
        "customer": {"id": "cus_degraded", "email": EMAIL},
        "items": [{"sku": "ANY-SKU", "quantity": 1}],
        "payment_method": "pm_card_visa",
    }


async def place(client: httpx.AsyncClient) -> httpx.Response:
    headers = {**STOREFRONT, "Idempotency-Key": uuid.uuid4().hex}
    return await client.post("/v1/orders", json=order_body(), headers=headers)


async def wait_for(check, timeout: float = 20, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} after {timeout}s")
        await asyncio.sleep(0.1)


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) >= 1


async def test_a_database_outage_is_503_never_500_and_readiness_recovers(
    client: httpx.AsyncClient, db_proxy: CuttableProxy
):
    placed = await place(client)
    assert placed.status_code == 202, placed.text
    order_url = f"/v1/orders/{placed.json()['id']}"
    statuses: list[int] = []
    stop = asyncio.Event()

    async def keep_reading() -> None:  # requests in flight when the database goes away
        while not stop.is_set():
            response = await client.get(order_url, headers=STOREFRONT)
            statuses.append(response.status_code)
            if response.status_code != 200:
                assert_unavailable(response)

    readers = [asyncio.create_task(keep_reading()) for _ in range(4)]
    await asyncio.sleep(0.3)
    db_proxy.cut()
    try:
        await wait_for(lambda: _status(client, "/readyz", 503), what="503 from /readyz")
        ready = await client.get("/readyz")
        assert ready.headers["content-type"] == "application/problem+json"
        assert ready.json()["checks"] == {"database": False, "broker": True}
        traffic = await client.get("/readyz/traffic")  # requests would fail: out of the Service
        assert traffic.status_code == 503 and "database not answering" in traffic.json()["detail"]
        assert_unavailable(await client.get(order_url, headers=STOREFRONT))
        assert_unavailable(await client.get(ORDERS_OF_CUSTOMER, headers=STOREFRONT))
        assert_unavailable(await place(client))
        await asyncio.sleep(1)
    finally:
        db_proxy.restore()
    await wait_for(lambda: _status(client, "/readyz", 200), what="200 from /readyz")
    stop.set()
    await asyncio.gather(*readers)

    assert 503 in statuses and set(statuses) <= {200, 503}, sorted(set(statuses))
    assert (await client.get(order_url, headers=STOREFRONT)).status_code == 200
    assert (await place(client)).status_code == 202


async def _status(client: httpx.AsyncClient, path: str, expected: int) -> bool:
    return (await client.get(path)).status_code == expected


async def fill(queue: QueueName, count: int, waited: float = 0) -> None:
    """`count` messages stamped as published `waited` seconds ago."""
    connection = await aio_pika.connect(f"amqp://guest:guest@127.0.0.1:5672/{SHED_VHOST}")
    stamp = datetime.fromtimestamp(time.time() - waited, UTC)
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(TASK_EXCHANGE)
        for _ in range(count):
            message = aio_pika.Message(b"[[], {}, {}]", timestamp=stamp)
            await exchange.publish(message, routing_key=queue.value)
    finally:
        await connection.close()


def purge(queue: QueueName) -> None:
    rabbitmqctl("purge_queue", "-p", SHED_VHOST, queue.value)


async def test_checkout_sheds_while_its_queue_is_past_the_limit(client: httpx.AsyncClient):
    purge(QueueName.ORDERS)
    assert (await place(client)).status_code == 202
    await fill(QueueName.ORDERS, SHED_LIMIT + 5)

    async def shed() -> bool:
        response = await place(client)
        if response.status_code == 202:
            return False
        assert_unavailable(response)
        assert response.headers["retry-after"] == RETRY_AFTER
        assert response.json()["type"].endswith("/overloaded")
        return True

    await wait_for(shed, timeout=10, what="503 while the orders queue is backlogged")
    assert (
        await client.get(ORDERS_OF_CUSTOMER, headers=STOREFRONT)
    ).status_code == 200  # reads go on
    metrics = (await client.get("/metrics")).text
    assert 'doorbuster_http_shed_total{queue="orders"}' in metrics

    purge(QueueName.ORDERS)

    async def accepted() -> bool:
        return (await place(client)).status_code == 202

    await wait_for(accepted, timeout=10, what="202 once the queue drained")


async def test_checkout_sheds_while_the_oldest_charge_has_waited_too_long(
    client: httpx.AsyncClient,
):
    """One charge, far below SHED_LIMIT_PAYMENTS, but waiting for longer than half the
    reservation timeout: an order accepted now would likely expire before it is charged."""
    purge(QueueName.PAYMENTS)
    purge(QueueName.ORDERS)
    assert (await place(client)).status_code == 202
    await fill(QueueName.PAYMENTS, 1, waited=RESERVATION_TIMEOUT * 0.75)

    async def shed() -> bool:
        purge(QueueName.ORDERS)  # the orders each 202 sends are not this test's backlog
        response = await place(client)
        if response.status_code == 202:
            return False
        assert_unavailable(response)
        assert response.headers["retry-after"] == RETRY_AFTER
        assert "Payments are" in response.json()["detail"]
        return True

    # The management API's statistics are refreshed every 5 s.
    await wait_for(shed, timeout=20, what="503 while the oldest charge waits too long")
    purge(QueueName.PAYMENTS)
    await fill(QueueName.PAYMENTS, 1, waited=RESERVATION_TIMEOUT * 0.25)

    async def accepted() -> bool:
        purge(QueueName.ORDERS)
        return (await place(client)).status_code == 202

    await wait_for(accepted, timeout=20, what="202 once the oldest charge is recent")
    purge(QueueName.PAYMENTS)
    purge(QueueName.ORDERS)


async def test_production_keys_work_dev_keys_do_not_and_neither_reaches_the_log(
    client: httpx.AsyncClient, orders_api: ApiProcess
):
    dev = await client.get(ORDERS_OF_CUSTOMER, headers={"Authorization": "Bearer dev-storefront"})
    assert dev.status_code == 401
    assert (await client.get(ORDERS_OF_CUSTOMER, headers=STOREFRONT)).status_code == 200
    log = orders_api.log.read_text()
    assert "development mode" not in log
    for secret in (STOREFRONT_KEY, ADMIN_KEY, EMAIL):
        assert secret not in log
