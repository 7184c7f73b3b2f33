"""Dead letters: list and inspect `<queue>.dlq`, and redrive messages to where they came from.

Listing peeks through the management API (messages are requeued in place). Redrive uses AMQP:
take a dead letter (unacked), publish a copy to the task exchange with its original routing key
(from `x-death`), wait for the broker's confirm, and only then ack the dead letter, so a
message is never lost between the two queues (a crash in between leaves a copy in both; every
task is idempotent). The copy drops the `x-death` history (RabbitMQ 4 refuses client-set
`x-death`), counts redrives in `doorbuster_redriven`, restamps its publish time and resets
Celery's `retries` so the task gets its full retry budget again.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from ops.rabbit import Management
from shared.messaging.topology import TASK_EXCHANGE, QueueName, dead_letter_queue
from shared.messaging.wire import PUBLISHED_AT_HEADER

COLUMNS = ("position", "task", "task_id", "order_id", "reason", "from_queue", "deaths", "died_at")
REDRIVE_HEADER = "doorbuster_redriven"
_DEATH_HEADERS = (
    "x-death",
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
)
_DEATH_HEADERS += ("x-last-death-exchange", "x-last-death-queue", "x-last-death-reason")


def dlq_name(queue: str) -> str:
    """`payments` or `payments.dlq` -> `payments.dlq`; anything else is refused."""
    base = queue.removesuffix(".dlq")
    return dead_letter_queue(QueueName(base))


@dataclass(frozen=True)
class DeadLetter:
    position: int
    task: str | None
    task_id: str | None
    order_id: str | None
    reason: str | None
    from_queue: str | None
    deaths: int
    died_at: str | None
    routing_key: str | None
    headers: dict[str, Any]
    properties: dict[str, Any]
    body: Any

    def summary(self) -> dict[str, Any]:
        return {column: getattr(self, column) for column in COLUMNS}

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _decode(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, list):
        return [_decode(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _decode(item) for key, item in value.items()}
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return value


def first_death(headers: dict[str, Any]) -> dict[str, Any]:
    deaths = headers.get("x-death") or []
    return deaths[0] if deaths else {}


def _died_at(death: dict[str, Any]) -> str | None:
    stamp = death.get("time")
    if isinstance(stamp, int | float):
        return datetime.fromtimestamp(stamp, UTC).isoformat()
    return stamp


def _order_id(body: Any) -> str | None:
    if isinstance(body, list) and len(body) >= 2 and isinstance(body[1], dict):
        value = body[1].get("order_id")
        return value if isinstance(value, str) else None
    return None


def dead_letter(
    position: int, headers: dict[str, Any], props: dict[str, Any], body: Any
) -> DeadLetter:
    death = first_death(headers)
    keys = death.get("routing-keys") or []
    return DeadLetter(
        position=position,
        task=headers.get("task"),
        task_id=headers.get("id"),
        order_id=_order_id(body),
        reason=death.get("reason"),
        from_queue=death.get("queue"),
        deaths=int(death.get("count", 0) or 0),
        died_at=_died_at(death),
        routing_key=keys[0] if keys else death.get("queue"),
        headers=headers,
        properties=props,
        body=body,
    )


def _parse_body(payload: str | bytes) -> Any:
    try:
        return json.loads(payload)
    except (ValueError, TypeError):
        return payload if isinstance(payload, str) else payload.decode("utf-8", "replace")


def list_dead_letters(management: Management, queue: str, limit: int = 50) -> list[DeadLetter]:
    letters = []
    for position, message in enumerate(management.peek(dlq_name(queue), limit), start=1):
        props = dict(message.get("properties") or {})
        headers = props.pop("headers", None) or {}
        letters.append(dead_letter(position, headers, props, _parse_body(message["payload"])))
    return letters


def find(letters: list[DeadLetter], key: str) -> DeadLetter | None:
    """By task id, or by position in the list (1-based)."""
    for letter in letters:
        if key in (letter.task_id, str(letter.position)):
            return letter
    return None


@dataclass(frozen=True)
class Redriven:
    task: str | None
    task_id: str | None
    routing_key: str


def redriven_copy(message: AbstractIncomingMessage) -> aio_pika.Message:
    headers = {k: v for k, v in (message.headers or {}).items() if k not in _DEATH_HEADERS}
    now = time.time()
    headers[REDRIVE_HEADER] = int(headers.get(REDRIVE_HEADER) or 0) + 1
    headers[PUBLISHED_AT_HEADER] = round(now, 3)
    if "retries" in headers:
        headers["retries"] = 0
    return aio_pika.Message(
        body=message.body,
        headers=headers,
        content_type=message.content_type,
        content_encoding=message.content_encoding,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        priority=message.priority,
        correlation_id=message.correlation_id,
        message_id=message.message_id,
        timestamp=datetime.fromtimestamp(now, UTC),
    )


def _target(message: AbstractIncomingMessage) -> str | None:
    """The original routing key, if it names one of our task queues."""
    death = _decode(first_death(dict(message.headers or {})))
    keys = death.get("routing-keys") or [death.get("queue")]
    key = keys[0] if keys else None
    return key if key in {queue.value for queue in QueueName} else None


async def redrive(
    amqp_url: str, queue: str, limit: int | None = None, task_id: str | None = None
) -> list[Redriven]:
    """Move dead letters of `queue` back (all, the first `limit`, or the one `task_id`)."""
    connection = await aio_pika.connect(amqp_url, timeout=10)
    moved: list[Redriven] = []
    held: list[AbstractIncomingMessage] = []
    try:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        exchange = await channel.get_exchange(TASK_EXCHANGE)
        dlq = await channel.get_queue(dlq_name(queue))
        while limit is None or len(moved) < limit:
            message = await dlq.get(no_ack=False, fail=False, timeout=10)
            if message is None:
                break
            target = _target(message)
            if target is None or (task_id and (message.headers or {}).get("id") != task_id):
                held.append(message)  # not ours to move: requeued below, untouched
                continue
            await exchange.publish(redriven_copy(message), routing_key=target, mandatory=True)
            await message.ack()  # only after the broker confirmed the copy
            headers = message.headers or {}
            moved.append(Redriven(_decode(headers.get("task")), _decode(headers.get("id")), target))
            if task_id:
                break
        for message in held:
            await message.nack(requeue=True)
    finally:
        await connection.close()
    return moved
