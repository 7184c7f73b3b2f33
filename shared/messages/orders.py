"""What the orders service sends: the commands of an order's life, to the inventory, to its
own payment tasks and to the mailer, and the expiry sweep and the reconciliation its beat
schedules.

Ids are passed, never rows: each receiver re-reads what it owns.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from shared.messaging.message import GATHERED_PER_MESSAGE, Message, Part
from shared.messaging.topology import QueueName, Route

Sku = str
MailKind = Literal["order_confirmation", "payment_failed", "order_rejected", "order_cancelled"]

_ORDER_FLOW = Route(QueueName.ORDERS, priority=7)


class OrderLine(Part):
    sku: Sku
    quantity: int = Field(ge=1, le=100)


class _ForOrder(Message):
    """A command that needs only the order's id."""

    order_id: str


class ReserveStock(Message):
    """Reserve every line or none; the inventory answers `inventory.reserved` or `.rejected`."""

    name: ClassVar[str] = "inventory.reserve"
    route: ClassVar[Route] = _ORDER_FLOW

    order_id: str
    items: list[OrderLine] = Field(min_length=1, max_length=50)


class CommitReservation(_ForOrder):
    """The order is paid: its reserved units leave stock.

    A commit changes no availability (the units were unavailable since the reservation), so
    the orders service's dispatcher holds its commits for a moment and sends them together
    as one `CommitReservations` (shared/messaging/outbox.py, `Dispatcher`): one task for
    many orders instead of one each. Its outbox row is what stays durable; the relay sends a
    forgotten one alone."""

    name: ClassVar[str] = "inventory.commit"
    route: ClassVar[Route] = _ORDER_FLOW
    gathers: ClassVar[bool] = True

    @classmethod
    def gathered(cls, payloads: list[dict[str, Any]]) -> CommitReservations:
        return CommitReservations(order_ids=list(dict.fromkeys(p["order_id"] for p in payloads)))


class CommitReservations(Message):
    """These orders are paid: their reserved units leave stock (what several
    `CommitReservation`s gathered by their sender's dispatcher become)."""

    name: ClassVar[str] = "inventory.commit_many"
    route: ClassVar[Route] = _ORDER_FLOW

    order_ids: list[str] = Field(min_length=1, max_length=GATHERED_PER_MESSAGE)


class ReleaseReservation(_ForOrder):
    """The order will not be paid: its reserved units are free again."""

    name: ClassVar[str] = "inventory.release"
    route: ClassVar[Route] = _ORDER_FLOW


class ReturnUnits(_ForOrder):
    """The paid order was refunded: its units go back into stock."""

    name: ClassVar[str] = "inventory.return"
    route: ClassVar[Route] = _ORDER_FLOW


class ChargeOrder(_ForOrder):
    """Charge a reserved order, at most once in effect (the payments pool, ~200 ms of Stripe)."""

    name: ClassVar[str] = "payments.charge"
    route: ClassVar[Route] = Route(QueueName.PAYMENTS, priority=9)


class RefundOrder(_ForOrder):
    """Refund a charged order, at most once in effect; a charge overtakes it."""

    name: ClassVar[str] = "payments.refund"
    route: ClassVar[Route] = Route(QueueName.PAYMENTS, priority=8)


class ExpireReservations(Message):
    """Cancel orders reserved longer ago than this (default: RESERVATION_TIMEOUT_SECONDS),
    plus the payments queue's backlog; sent by beat, without a message expiry (a sweep is
    idempotent: one that waited out an outage runs late, it is not dead-lettered)."""

    name: ClassVar[str] = "orders.expire_reservations"
    route: ClassVar[Route] = _ORDER_FLOW

    older_than_seconds: int | None = Field(default=None, ge=0)


class ReconcilePayments(Message):
    """Compare the orders with the provider's intents of the last `lookback_seconds` (default
    RECONCILE_LOOKBACK_SECONDS) and fix what differs; sent by beat. Lowest priority: one an
    hour, never ahead of an order's own steps."""

    name: ClassVar[str] = "orders.reconcile_payments"
    route: ClassVar[Route] = Route(QueueName.ORDERS, priority=1)

    lookback_seconds: int | None = Field(default=None, ge=1)


class SendOrderMail(Message):
    """One transactional mail about an order, at most once per order and kind."""

    name: ClassVar[str] = "notifications.send_order_mail"
    route: ClassVar[Route] = Route(QueueName.TRANSACTIONAL, priority=5)

    order_id: str
    kind: MailKind
    to: str
    total: int | None = None
    currency: str | None = None
    reason: str | None = None
