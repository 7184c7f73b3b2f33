"""The expiry sweep's rules in the real repository's SQL, on a migrated orders database of its
own: the reservation stamps `reserved_at` with the database's clock, the timeout counts from
it, a message unpublished in the outbox keeps its order, pending orders are never expired and
the stalled ones are counted. Rows are written by hand, as an outage would leave them."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import pytest

from devtools.harness.stack import (
    DB_PREFIX,
    ROOT,
    SLOT,
    drop_databases,
    fresh_vhost,
    rabbitmqctl,
)
from services.orders import handlers
from services.orders.runtime import OrdersRuntime
from shared.infra.settings import Settings
from shared.messages.inventory import PricedLine, StockReserved
from shared.messaging.backlog import BacklogUnknown, head_message_wait
from shared.messaging.publisher import declare_topology
from shared.messaging.topology import QueueName

DATABASE = f"{DB_PREFIX}_expiry"
VHOST = f"doorbuster-expiry-rules{SLOT or ''}"
TIMEOUT = timedelta(minutes=15)


async def drop_database() -> None:
    await drop_databases(f"{DATABASE}_orders")


@pytest.fixture(scope="module")
def settings() -> Iterator[Settings]:
    asyncio.run(drop_database())
    fresh_vhost(VHOST)
    env = {
        **os.environ,
        "DOORBUSTER_ENV": "test",
        "DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:5432/{DATABASE}",
        "RABBITMQ_URL": f"amqp://guest:guest@127.0.0.1:5672/{VHOST}",
        "DB_POOL_SIZE": "2",  # the machine's PostgreSQL serves every checkout's suites
    }
    migrated = subprocess.run(
        [sys.executable, "-m", "shared.infra.migrate", "orders"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert migrated.returncode == 0, migrated.stderr
    try:
        yield Settings(
            database_url=env["DATABASE_URL"], rabbitmq_url=env["RABBITMQ_URL"], db_pool_size=2
        )
    finally:
        rabbitmqctl("delete_vhost", VHOST)
        asyncio.run(drop_database())


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[OrdersRuntime]:
    runtime = OrdersRuntime(settings)
    await runtime.start(relay=False)
    await runtime.wait_for_broker(5)
    await runtime.db.fetch_alone("DELETE FROM orders")
    await runtime.db.fetch_alone("DELETE FROM outbox")
    yield runtime
    await runtime.stop()


async def order(
    runtime: OrdersRuntime, status: str, age: str = "0 s", reserved: str | None = None
) -> str:
    """An order `age` old (a PostgreSQL interval), reserved `reserved` ago if given."""
    order_id = f"ord_{uuid.uuid4().hex}"
    await runtime.db.fetch_alone(
        "INSERT INTO orders (id, status, customer_id, customer_email, payment_method, items,"
        " total, currency, created_at, reserved_at)"
        " VALUES ($1, $2, 'cus_1', 'ann@example.com', 'pm_card_visa',"
        ' \'[{"sku": "TV-55", "quantity": 1, "unit_price": 2500}]\'::jsonb, 2500, \'usd\','
        " now() - $3::text::interval, now() - $4::text::interval)",
        order_id,
        status,
        age,
        reserved,
    )
    return order_id


async def in_outbox(runtime: OrdersRuntime, order_id: str, published: bool) -> None:
    """A message about the order in the outbox, confirmed by the broker or not."""
    await runtime.db.fetch_alone(
        "INSERT INTO outbox (task_id, task_name, kwargs, published_at)"
        " VALUES ($1, 'payments.charge', $2::jsonb, CASE WHEN $3 THEN now() END)",
        str(uuid.uuid4()),
        {"order_id": order_id},
        published,
    )


async def row(runtime: OrdersRuntime, order_id: str) -> dict[str, Any]:
    [found] = await runtime.db.fetch_alone("SELECT * FROM orders WHERE id = $1", order_id)
    return dict(found)


async def test_applying_the_reservation_stamps_reserved_at_with_the_databases_clock(
    runtime: OrdersRuntime,
):
    order_id = await order(runtime, "pending", age="1 hour")
    line = PricedLine(sku="TV-55", quantity=1, unit_price=2500)
    event = StockReserved(order_id=order_id, lines=[line], currency="usd")
    assert await handlers.record_reservation(runtime.uow(), event)
    [stamp] = await runtime.db.fetch_alone(
        "SELECT now() - reserved_at AS ago, reserved_at - created_at AS waited FROM orders"
        " WHERE id = $1",
        order_id,
    )
    assert timedelta(0) <= stamp["ago"] < timedelta(seconds=5)
    assert stamp["waited"] > timedelta(minutes=59)


async def test_the_sweep_expires_only_what_the_customer_or_the_provider_kept_waiting(
    runtime: OrdersRuntime,
):
    orders = {
        # reserved an hour ago, the charge sent: the provider's delay
        "provider_late": await order(runtime, "reserved", age="2 hours", reserved="1 hour"),
        "charge_sent": await order(runtime, "reserved", age="2 hours", reserved="1 hour"),
        # accepted long ago, reserved just now: the system's delay
        "system_late": await order(runtime, "reserved", age="2 hours", reserved="1 minute"),
        # the charge never left the outbox (the broker away)
        "charge_unsent": await order(runtime, "reserved", age="2 hours", reserved="1 hour"),
        # pending: never expired, whether or not the reserve left
        "reserve_sent": await order(runtime, "pending", age="2 hours"),
        "reserve_unsent": await order(runtime, "pending", age="2 hours"),
    }
    for name in ("charge_sent", "reserve_sent"):
        await in_outbox(runtime, orders[name], published=True)
    for name in ("charge_unsent", "reserve_unsent"):
        await in_outbox(runtime, orders[name], published=False)

    assert await handlers.expire_reservations(runtime.uow(), TIMEOUT, batch=1) == 2

    statuses = {name: (await row(runtime, order_id))["status"] for name, order_id in orders.items()}
    assert statuses == {
        "provider_late": "cancelled",
        "charge_sent": "cancelled",
        "system_late": "reserved",
        "charge_unsent": "reserved",
        "reserve_sent": "pending",
        "reserve_unsent": "pending",
    }
    assert (await row(runtime, orders["provider_late"]))["reason"] == "reservation_expired"
    stalled = await runtime.uow().orders.stalled(TIMEOUT, 5)
    assert stalled == (1, [orders["reserve_sent"]])


async def test_the_payments_backlog_is_the_head_messages_wait_from_the_management_api(
    settings: Settings,
):
    """What the sweep adds to the timeout: 0 for an empty queue, then the age of the oldest
    ready charge (its AMQP timestamp; the management API's statistics lag up to 5 s)."""

    async def waited() -> float | None:
        try:
            return await head_message_wait(
                settings.rabbitmq_management_url, settings.rabbitmq_url, QueueName.PAYMENTS
            )
        except BacklogUnknown:  # a queue declared a moment ago: no statistics yet
            return None

    async def until(condition: Callable[[float | None], bool]) -> float | None:
        deadline = time.monotonic() + 15
        while not condition(value := await waited()):
            assert time.monotonic() < deadline, f"the management API still says {value}"
            await asyncio.sleep(0.5)
        return value

    connection = await aio_pika.connect(settings.rabbitmq_url)
    try:
        channel = await connection.channel()
        await declare_topology(channel)
        assert await until(lambda value: value is not None) == 0
        published = datetime.fromtimestamp(time.time() - 120, UTC)
        message = aio_pika.Message(b"[[], {}, {}]", timestamp=published)
        await channel.default_exchange.publish(message, routing_key=QueueName.PAYMENTS.value)
        assert 115 < await until(lambda value: bool(value)) < 140
        await (await channel.get_queue(QueueName.PAYMENTS.value)).purge()
    finally:
        await connection.close()
