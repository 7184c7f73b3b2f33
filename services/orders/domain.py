"""Order rules, free of frameworks: statuses, the legal transitions, idempotency fingerprints,
the mail an order's customer gets.

Every status change goes through `transition`, the one place that knows which moves are
legal; an illegal one is refused and logged, never applied.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

import orjson

from shared.messages.orders import MailKind, SendOrderMail

log = logging.getLogger(__name__)


class OrderStatus(StrEnum):
    PENDING = "pending"
    RESERVED = "reserved"
    PAID = "paid"
    REJECTED = "rejected"
    PAYMENT_FAILED = "payment_failed"
    CANCELLED = "cancelled"
    REFUNDED = "refunded"


FINAL = frozenset(
    {
        OrderStatus.PAID,
        OrderStatus.REJECTED,
        OrderStatus.PAYMENT_FAILED,
        OrderStatus.CANCELLED,
        OrderStatus.REFUNDED,
    }
)

TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.PENDING: frozenset(
        {OrderStatus.RESERVED, OrderStatus.REJECTED, OrderStatus.CANCELLED}
    ),
    OrderStatus.RESERVED: frozenset(
        {OrderStatus.PAID, OrderStatus.PAYMENT_FAILED, OrderStatus.CANCELLED}
    ),
    OrderStatus.PAID: frozenset({OrderStatus.REFUNDED}),
}


class IllegalTransition(Exception):
    def __init__(self, order_id: str, current: str, target: str):
        super().__init__(f"order {order_id}: {current} -> {target} is not allowed")
        self.order_id, self.current, self.target = order_id, current, target


def transition(order_id: str, current: str, target: OrderStatus) -> OrderStatus:
    """Return `target` if `current -> target` is legal; log and raise otherwise."""
    if target not in TRANSITIONS.get(OrderStatus(current), frozenset()):
        error = IllegalTransition(order_id, current, target)
        log.warning("refused illegal transition: %s", error)
        raise error
    return target


def new_order_id() -> str:
    return f"ord_{uuid.uuid4().hex}"


def fingerprint(body: dict[str, Any]) -> str:
    """Stable hash of a request body: same key + same body replays, another body conflicts."""
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def key_scope(api_key: str) -> str:
    """Idempotency keys are scoped per API key; only a hash of the key is stored."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:32]


def order_total(lines: list[dict[str, Any]]) -> int:
    return sum(line["unit_price"] * line["quantity"] for line in lines)


def order_mail(
    order: Mapping[str, Any], kind: MailKind, reason: str | None = None
) -> SendOrderMail:
    """The mail of `kind` about `order`, to its customer."""
    return SendOrderMail(
        order_id=order["id"],
        kind=kind,
        to=order["customer_email"],
        total=order["total"],
        currency=order["currency"],
        reason=reason,
    )
