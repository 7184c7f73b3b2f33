"""Per queue: ready and unacked messages, rates, consumers, dead letters, oldest message age.

The age comes from RabbitMQ's `head_message_timestamp` (the AMQP `timestamp` of the message at
the head, which our publisher sets); where the broker does not report it (an idle queue not yet
paged in, or a RabbitMQ that lacks it), a classic queue's head message is peeked and requeued.
Quorum queues are not peeked: a requeue there counts as a delivery attempt.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from ops.rabbit import Management
from shared.messaging.topology import QueueName, dead_letter_queue

COLUMNS = (
    "queue",
    "ready",
    "unacked",
    "dead_letters",
    "publish_per_s",
    "deliver_per_s",
    "consumers",
    "oldest_age_s",
)


@dataclass(frozen=True)
class QueueRow:
    queue: str
    ready: int
    unacked: int
    dead_letters: int
    publish_per_s: float
    deliver_per_s: float
    consumers: int
    oldest_age_s: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _rate(stats: dict[str, Any], key: str) -> float:
    return float(((stats.get("message_stats") or {}).get(f"{key}_details") or {}).get("rate", 0))


def head_timestamp(management: Management, stats: dict[str, Any]) -> float | None:
    if stats.get("head_message_timestamp"):
        return float(stats["head_message_timestamp"])
    if not stats.get("messages_ready") or stats.get("type") == "quorum":
        return None
    for message in management.peek(stats["name"], 1):
        stamp = (message.get("properties") or {}).get("timestamp")
        if stamp:
            return float(stamp)
    return None


def queue_rows(management: Management, now: float | None = None) -> list[QueueRow]:
    everything = management.queues()
    now = now or time.time()
    rows = []
    for queue in QueueName:
        stats = everything.get(queue.value)
        if stats is None:  # not declared yet: nothing has started on this vhost
            rows.append(QueueRow(queue.value, 0, 0, 0, 0.0, 0.0, 0, None))
            continue
        dead = everything.get(dead_letter_queue(queue), {})
        stamp = head_timestamp(management, stats)
        rows.append(
            QueueRow(
                queue=queue.value,
                ready=int(stats.get("messages_ready", 0)),
                unacked=int(stats.get("messages_unacknowledged", 0)),
                dead_letters=int(dead.get("messages", 0)),
                publish_per_s=_rate(stats, "publish"),
                deliver_per_s=_rate(stats, "deliver_get"),
                consumers=int(stats.get("consumers", 0)),
                oldest_age_s=round(max(0.0, now - stamp), 1) if stamp else None,
            )
        )
    return rows
