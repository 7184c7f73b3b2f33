"""Messages a pool must never run: pickle, broken JSON, invalid arguments. Each is refused and
dead-lettered to `<queue>.dlq` by the running pools, and nothing it asks for happens.

The pickle bodies are armed: unpickling one creates a marker file (its `__reduce__` calls
`open`), so "never executed" covers deserialisation, not only the task body.
"""

from __future__ import annotations

import asyncio
import pickle
import time
import uuid
from pathlib import Path
from typing import Any

import aio_pika
import orjson

from shared.messages import OutgoingTask, celery_headers
from shared.queues import TASK_EXCHANGE, QueueName, TaskName, dead_letter_queue
from tests.support.shop import Shop, unique_sku
from tests.support.stack import Stack, db_fetch

PICKLE = "application/x-python-serialize"
EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


class Armed:
    """Unpickling this creates `path`: proof that someone deserialised the body."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def task_for(queue: QueueName, order_id: str, sku: str) -> OutgoingTask:
    """A real task call for each queue, whose effect the test can look for."""
    mail = {"order_id": order_id, "kind": "order_confirmation", "to": "eve@example.com"}
    calls = {
        QueueName.PAYMENTS: OutgoingTask(TaskName.CHARGE, {"order_id": order_id}),
        QueueName.ORDERS: OutgoingTask(
            TaskName.RESERVE, {"order_id": order_id, "items": [{"sku": sku, "quantity": 1}]}
        ),
        QueueName.TRANSACTIONAL: OutgoingTask(TaskName.SEND_ORDER_MAIL, mail),
        # The bulk pool runs the notifications task module: a real task it would run.
        QueueName.BULK: OutgoingTask(TaskName.SEND_ORDER_MAIL, mail, priority_override=1),
    }
    return calls[queue]


async def publish(
    channel: aio_pika.abc.AbstractChannel,
    queue: QueueName,
    task: OutgoingTask,
    body: bytes,
    content_type: str,
    task_header: bool = True,
) -> None:
    """As Celery protocol 2 would, or with no `task` header (protocol 1's shape), which Celery
    decodes at once and, failing, acks by default."""
    headers = celery_headers(task) if task_header else {"id": task.id}
    exchange = await channel.get_exchange(TASK_EXCHANGE)
    message = aio_pika.Message(
        body=body,
        headers=headers,
        content_type=content_type,
        content_encoding="binary" if content_type == PICKLE else "utf-8",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=task.id,
        correlation_id=task.id,
    )
    await exchange.publish(message, routing_key=queue.value, mandatory=True)


async def dead_lettered(
    channel: aio_pika.abc.AbstractChannel, ids: set[str], timeout: float = 20
) -> dict[str, aio_pika.abc.AbstractIncomingMessage]:
    """Take the messages with these ids out of the dead-letter queues."""
    found: dict[str, aio_pika.abc.AbstractIncomingMessage] = {}
    deadline = time.monotonic() + timeout
    while ids - found.keys() and time.monotonic() < deadline:
        for queue in QueueName:
            dlq = await channel.get_queue(dead_letter_queue(queue))
            while (message := await dlq.get(no_ack=False, fail=False)) is not None:
                if message.message_id in ids:
                    found[message.message_id] = message
                    await message.ack()
                else:
                    await message.nack(requeue=True)
                    break
        await asyncio.sleep(0.2)
    return found


def x_death(message: aio_pika.abc.AbstractIncomingMessage) -> dict[str, Any]:
    death = message.headers["x-death"][0]
    return {
        key: value.decode() if isinstance(value, bytes) else value for key, value in death.items()
    }


async def poison(stack: Stack, make_body, content_type: str, order_id: str, sku: str):
    """Each queue gets the body as a protocol 2 message and as one without a `task` header."""
    connection = await aio_pika.connect(stack.env["RABBITMQ_URL"])
    try:
        channel = await connection.channel(publisher_confirms=True)
        tasks = {}
        for queue in QueueName:
            for task_header in (True, False):
                task = task_for(queue, f"{order_id}-{queue.name.lower()}", sku)
                tasks[task.id] = (queue, task)
                body = make_body(task)
                await publish(channel, queue, task, body, content_type, task_header)
        return tasks, await dead_lettered(channel, set(tasks))
    finally:
        await connection.close()


async def assert_nothing_happened(order_id: str) -> None:
    reservations = await db_fetch(
        "inventory", "SELECT order_id FROM reservations WHERE order_id LIKE $1", f"{order_id}%"
    )
    mails = await db_fetch(
        "notifications", "SELECT order_id FROM notifications WHERE order_id LIKE $1", f"{order_id}%"
    )
    assert reservations == [] and mails == []


async def test_pickle_is_refused_and_dead_lettered_never_unpickled(
    stack: Stack, shop: Shop, tmp_path: Path
):
    sku = unique_sku("PICKLE")
    await shop.put_product(sku, stock=5)
    marker = tmp_path / "unpickled"
    order_id = f"ord_pickle_{uuid.uuid4().hex[:8]}"

    def armed_pickle(task: OutgoingTask) -> bytes:
        return pickle.dumps(((), {**task.kwargs, "armed": Armed(str(marker))}, EMBED))

    tasks, found = await poison(stack, armed_pickle, PICKLE, order_id, sku)

    assert found.keys() == tasks.keys(), "a pickle message was not dead-lettered"
    for task_id, message in found.items():
        queue, _ = tasks[task_id]
        death = x_death(message)
        assert (death["reason"], death["queue"]) == ("rejected", queue.value)
        assert message.content_type == PICKLE
    await asyncio.sleep(1)
    assert not marker.exists(), "a worker unpickled a message"
    await assert_nothing_happened(order_id)
    assert (await shop.product(sku))["reserved"] == 0


async def test_broken_json_is_dead_lettered_not_dropped(stack: Stack, shop: Shop):
    sku = unique_sku("BROKEN")
    order_id = f"ord_broken_{uuid.uuid4().hex[:8]}"

    def broken(task: OutgoingTask) -> bytes:
        return orjson.dumps([[], task.kwargs, EMBED])[:-7]  # cut mid-document

    tasks, found = await poison(stack, broken, "application/json", order_id, sku)

    assert found.keys() == tasks.keys(), "a broken JSON message was dropped"
    for task_id, message in found.items():
        assert x_death(message)["reason"] == "rejected"
        assert x_death(message)["queue"] == tasks[task_id][0].value
    await assert_nothing_happened(order_id)
    logs = "".join((stack.logs / f"{pool}-pool.log").read_text() for pool in ("orders", "payments"))
    assert "undecodable message dead-lettered" in logs
    assert "eve@example.com" not in logs


async def test_invalid_arguments_are_dead_lettered_with_the_reason_logged(stack: Stack, shop: Shop):
    order_id = f"ord_invalid_{uuid.uuid4().hex[:8]}"

    def invalid(task: OutgoingTask) -> bytes:
        kwargs = {**task.kwargs, "order_id": 12345, "unexpected": "eve@example.com"}
        return orjson.dumps([[], kwargs, EMBED])

    tasks, found = await poison(stack, invalid, "application/json", order_id, "ANY")

    assert found.keys() == tasks.keys()
    await assert_nothing_happened(order_id)
    log = (stack.logs / "orders-pool.log").read_text()
    reserve_id = next(task_id for task_id, (queue, _) in tasks.items() if queue is QueueName.ORDERS)
    line = next(
        line for line in log.splitlines() if reserve_id in line and "invalid payload" in line
    )
    assert "order_id: Input should be a valid string" in line
    assert "unexpected: Extra inputs are not permitted" in line
    assert "eve@example.com" not in log
