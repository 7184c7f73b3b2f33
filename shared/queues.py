"""The queue topology, declared once: queues, dead letters, task names, routes and priorities.

Both the aio-pika publisher and the Celery app read this module, so a queue is always declared
with the same arguments (RabbitMQ refuses a redeclaration with other arguments:
`PRECONDITION_FAILED - inequivalent arg`). Nothing else in the code base spells a queue name.

Queue type: locally and in tests the queues are *classic* durable queues with `x-max-priority`
10, because Debian's RabbitMQ 3.10 has no priorities on quorum queues. With `QUEUE_TYPE=quorum`
(RabbitMQ 4.3+ clusters, `deploy/k8s/`) they are quorum queues, which honour message priority
strictly and ignore `x-max-priority`. Changing the type of an existing queue needs a migration:
drain it, delete it, let the next declare create it (see docs/operations.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

TASK_EXCHANGE = "doorbuster.tasks"
DEAD_LETTER_EXCHANGE = "doorbuster.dlx"
MAX_PRIORITY = 10


class QueueName(StrEnum):
    PAYMENTS = "payments"
    ORDERS = "orders"
    TRANSACTIONAL = "notifications.transactional"
    BULK = "notifications.bulk"


class TaskName(StrEnum):
    """Explicit task names: services reach each other only through these."""

    CHARGE = "payments.charge"
    REFUND = "payments.refund"
    RESERVE = "inventory.reserve"
    RELEASE = "inventory.release"
    COMMIT = "inventory.commit"
    RETURN = "inventory.return"
    APPLY_RESERVATION = "orders.apply_reservation"
    EXPIRE_RESERVATIONS = "orders.expire_reservations"
    SEND_ORDER_MAIL = "notifications.send_order_mail"
    SEND_CAMPAIGN_BATCH = "notifications.send_campaign_batch"


@dataclass(frozen=True)
class Route:
    queue: QueueName
    priority: int


ROUTES: dict[TaskName, Route] = {
    TaskName.CHARGE: Route(QueueName.PAYMENTS, 9),
    TaskName.REFUND: Route(QueueName.PAYMENTS, 8),
    TaskName.RESERVE: Route(QueueName.ORDERS, 7),
    TaskName.RELEASE: Route(QueueName.ORDERS, 7),
    TaskName.COMMIT: Route(QueueName.ORDERS, 7),
    TaskName.RETURN: Route(QueueName.ORDERS, 7),
    TaskName.APPLY_RESERVATION: Route(QueueName.ORDERS, 7),
    TaskName.EXPIRE_RESERVATIONS: Route(QueueName.ORDERS, 7),
    TaskName.SEND_ORDER_MAIL: Route(QueueName.TRANSACTIONAL, 5),
    TaskName.SEND_CAMPAIGN_BATCH: Route(QueueName.BULK, 1),
}


def route_for(task: str) -> Route:
    return ROUTES[TaskName(task)]


def dead_letter_queue(queue: QueueName | str) -> str:
    return f"{queue}.dlq"


def queue_arguments(queue: QueueName, queue_type: str = "classic") -> dict[str, object]:
    """The arguments every declarer must use for `queue` (the one place they are spelled)."""
    arguments: dict[str, object] = {
        "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
        "x-dead-letter-routing-key": dead_letter_queue(queue),
    }
    if queue_type == "quorum":
        arguments["x-queue-type"] = "quorum"
    else:
        arguments["x-max-priority"] = MAX_PRIORITY
    return arguments


def dead_letter_arguments(queue_type: str = "classic") -> dict[str, object]:
    return {"x-queue-type": "quorum"} if queue_type == "quorum" else {}
