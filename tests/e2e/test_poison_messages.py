"""Messages a pool must never run: pickle, broken JSON, invalid arguments. Each is refused and
dead-lettered to `<queue>.dlq` by the running pools, and nothing it asks for happens.

The pickle bodies are armed: unpickling one creates a marker file (its `__reduce__` calls
`open`), so "never executed" covers deserialisation, not only the task body.
"""

from __future__ import annotations

import asyncio
import pickle
import uuid
from pathlib import Path

import aio_pika
import orjson

from devtools.harness.shop import Shop, unique_sku
from devtools.harness.stack import Stack, db_fetch
from shared.messaging.topology import QueueName
from shared.messaging.wire import OutgoingTask
from tests.support.poison import (
    EMBED,
    PICKLE,
    Armed,
    dead_lettered,
    publish,
    task_for,
    x_death,
)


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
    assert "poison message dead-lettered: undecodable" in logs
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
