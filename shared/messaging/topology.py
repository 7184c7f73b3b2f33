"""The queue topology, declared once: queues, dead letters, routes and priorities.

Both the aio-pika publisher and the Celery app read this module, so a queue is always declared
with the same arguments (RabbitMQ refuses a redeclaration with other arguments:
`PRECONDITION_FAILED - inequivalent arg`). Nothing else in the code base spells a queue name;
each message class (`shared/messages/`) names its `Route` with one of these queues.

Queue type: locally and in tests the queues are *classic* durable queues with `x-max-priority`
10 behind a direct exchange. With `QUEUE_TYPE=quorum` (`deploy/k8s/`, and the three-node cluster
of `make faults`) they are quorum queues, replicated on three nodes, and:
- priorities: RabbitMQ 4.3+ honours message priority strictly; Debian's 3.10 has none (FIFO).
  Priority inside one queue only orders a charge before a refund on `payments`; a charge
  overtakes a bulk backlog either way, because every kind of work has its own queue and pool.
- a delivery limit (`x-delivery-limit`): a message redelivered that often (it kills its worker
  each time) is dead-lettered, not redelivered forever;
- at-least-once dead-lettering (`x-dead-letter-strategy`, which needs `x-overflow:
  reject-publish`): a dead letter is not lost if a node fails while it moves;
- a *topic* task exchange, because Celery's countdown retries on quorum queues go through its
  native delayed delivery (`celery_delayed_*`), which cannot route to a direct exchange (it
  would hold the retried task in the worker's memory instead). Bindings use the queue names,
  so a topic exchange routes exactly as the direct one does.
Changing the type of an existing queue or exchange needs a migration: drain, delete, let the
next declare create it (see docs/operations.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

TASK_EXCHANGE = "doorbuster.tasks"
DEAD_LETTER_EXCHANGE = "doorbuster.dlx"
MAX_PRIORITY = 10
# Deliveries of one message on a quorum queue before it is dead-lettered: far above what faults
# cause (a worker killed twice, a broker node lost: 2-3), low enough to stop a crash loop.
QUORUM_DELIVERY_LIMIT = 10
# A dead-letter queue is read (the ops CLI, the audit, a filtered redrive that puts back what it
# does not move) but must never drop a message: RabbitMQ 4.x gives every quorum queue a delivery
# limit of 20 unless one is set, so the DLQs set one that is never reached.
DEAD_LETTER_DELIVERY_LIMIT = 1_000_000


class QueueName(StrEnum):
    PAYMENTS = "payments"
    ORDERS = "orders"
    TRANSACTIONAL = "notifications.transactional"
    BULK = "notifications.bulk"


@dataclass(frozen=True)
class Route:
    """Where a message goes: its queue, and its priority there (0-9; higher first)."""

    queue: QueueName
    priority: int


def dead_letter_queue(queue: QueueName | str) -> str:
    return f"{queue}.dlq"


def queue_arguments(queue: QueueName, queue_type: str = "classic") -> dict[str, object]:
    """The arguments every declarer must use for `queue` (the one place they are spelled)."""
    arguments: dict[str, object] = {
        "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
        "x-dead-letter-routing-key": dead_letter_queue(queue),
    }
    if queue_type == "quorum":
        arguments.update(
            {
                "x-queue-type": "quorum",
                "x-delivery-limit": QUORUM_DELIVERY_LIMIT,
                "x-dead-letter-strategy": "at-least-once",
                "x-overflow": "reject-publish",
            }
        )
    else:
        arguments["x-max-priority"] = MAX_PRIORITY
    return arguments


def dead_letter_arguments(queue_type: str = "classic") -> dict[str, object]:
    """A dead-letter queue has no delivery limit: the ops CLI and the audit read its messages
    (on a quorum queue without requeueing them), and nothing there may ever be dropped."""
    if queue_type != "quorum":
        return {}
    return {"x-queue-type": "quorum", "x-delivery-limit": DEAD_LETTER_DELIVERY_LIMIT}


def task_exchange_type(queue_type: str = "classic") -> str:
    """`direct` for classic queues; `topic` for quorum queues (Celery's native delayed delivery
    routes countdown retries only through topic or fanout exchanges)."""
    return "topic" if queue_type == "quorum" else "direct"
