"""Poison messages for the running pools: pickle (armed), broken JSON, an unknown task name,
an oversized body, published on a queue as a client would, and taken back out of the
dead-letter queues. Used by the poison-message e2e tests and the fault suite's scenario f."""

from __future__ import annotations

import asyncio
import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aio_pika
import orjson

from shared.messages.orders import ChargeOrder, ReserveStock, SendOrderMail
from shared.messaging.topology import TASK_EXCHANGE, QueueName, dead_letter_queue
from shared.messaging.wire import OutgoingTask, celery_headers

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
        QueueName.PAYMENTS: OutgoingTask(ChargeOrder.name, {"order_id": order_id}),
        QueueName.ORDERS: OutgoingTask(
            ReserveStock.name, {"order_id": order_id, "items": [{"sku": sku, "quantity": 1}]}
        ),
        QueueName.TRANSACTIONAL: OutgoingTask(SendOrderMail.name, mail),
        # The bulk pool runs the notifications task module: a real task it would run.
        QueueName.BULK: OutgoingTask(SendOrderMail.name, mail),
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
            others = []  # held unacked while looking past them, then put back in order
            while (message := await dlq.get(no_ack=False, fail=False)) is not None:
                if message.message_id in ids:
                    found[message.message_id] = message
                    await message.ack()
                else:
                    others.append(message)
            for message in others:
                await message.nack(requeue=True)
        await asyncio.sleep(0.2)
    return found


def x_death(message: aio_pika.abc.AbstractIncomingMessage) -> dict[str, Any]:
    death = message.headers["x-death"][0]
    return {
        key: value.decode() if isinstance(value, bytes) else value for key, value in death.items()
    }


@dataclass(frozen=True)
class Poison:
    """One kind of poison: how its body is made, and the reason the consumer must log."""

    kind: str
    reason: str
    content_type: str
    body: Callable[[OutgoingTask], bytes]
    task_name: str | None = None  # overrides the queue's real task name


def poison_kinds(marker: str, max_message_bytes: int) -> list[Poison]:
    """Malformed JSON, an unknown task name, an armed pickle, an oversized (valid) payload."""
    padding = "x" * (max_message_bytes + 1024)
    return [
        Poison(
            "malformed JSON",
            "undecodable",
            "application/json",
            lambda task: orjson.dumps([[], task.kwargs, EMBED])[:-7],
        ),
        Poison(
            "unknown task",
            "unknown_task",
            "application/json",
            lambda task: orjson.dumps([[], task.kwargs, EMBED]),
            task_name="doorbuster.no_such_task",
        ),
        Poison(
            "pickle",
            "content_type_refused",
            PICKLE,
            lambda task: pickle.dumps(((), {**task.kwargs, "armed": Armed(marker)}, EMBED)),
        ),
        Poison(
            "oversized",
            "oversized",
            "application/json",
            lambda task: orjson.dumps([[], {**task.kwargs, "padding": padding}, EMBED]),
        ),
    ]


async def poison_every_queue(
    rabbitmq_url: str, kinds: list[Poison], order_prefix: str, sku: str
) -> dict[str, tuple[QueueName, Poison]]:
    """Publish each kind on every queue (protocol 2 shape); returns them by task id."""
    published: dict[str, tuple[QueueName, Poison]] = {}
    connection = await aio_pika.connect(rabbitmq_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        for queue in QueueName:
            for number, kind in enumerate(kinds):
                real = task_for(queue, f"{order_prefix}-{queue.name.lower()}-{number}", sku)
                task = OutgoingTask(kind.task_name or real.name, real.kwargs, id=real.id)
                await publish(channel, queue, task, kind.body(task), kind.content_type)
                published[task.id] = (queue, kind)
    finally:
        await connection.close()
    return published


async def take_dead_letters(rabbitmq_url: str, ids: set[str], timeout: float = 20) -> dict:
    """Take the messages with these ids out of the dead-letter queues (acked: gone)."""
    connection = await aio_pika.connect(rabbitmq_url)
    try:
        channel = await connection.channel()
        found = await dead_lettered(channel, ids, timeout)
        return {task_id: x_death(message) for task_id, message in found.items()}
    finally:
        await connection.close()
