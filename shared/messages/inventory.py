"""What the inventory service sends: its answer to a reservation, as events of its own.

The orders service handles both (it owns the next step: price and charge, or reject); the
inventory names what happened, not what orders should do about it.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from shared.messages.orders import OrderLine
from shared.messaging.message import Message
from shared.messaging.topology import QueueName, Route

_ORDER_FLOW = Route(QueueName.ORDERS, priority=7)


class PricedLine(OrderLine):
    unit_price: int = Field(gt=0)


class StockReserved(Message):
    """Every line of the order is reserved, at these prices. Handled on the payments queue
    and pool, at a charge's priority: the orders service records the prices and charges the
    order in the same task (the next step is the charge; a hop less per order)."""

    name: ClassVar[str] = "inventory.reserved"
    route: ClassVar[Route] = Route(QueueName.PAYMENTS, priority=9)

    order_id: str
    lines: list[PricedLine] = Field(min_length=1, max_length=50)
    currency: str


class StockRejected(Message):
    """The order cannot be reserved; nothing of it is held."""

    name: ClassVar[str] = "inventory.rejected"
    route: ClassVar[Route] = _ORDER_FLOW

    order_id: str
    reason: Literal["out_of_stock", "unknown_sku"]


class ApplyReservation(Message):
    """Deprecated (2026-12): the one answer message that named the orders service's use case.
    Kept so that answers queued before a deploy still apply; nothing sends it."""

    name: ClassVar[str] = "orders.apply_reservation"
    route: ClassVar[Route] = _ORDER_FLOW
    deprecated: ClassVar[bool] = True

    order_id: str
    outcome: Literal["reserved", "rejected"]
    reason: Literal["out_of_stock", "unknown_sku"] | None = None
    lines: list[PricedLine] = Field(default_factory=list)
    currency: str | None = None

    def as_event(self) -> StockReserved | StockRejected:
        if self.outcome == "reserved":
            assert self.currency is not None, "a reserved answer carries its currency"
            return StockReserved(order_id=self.order_id, lines=self.lines, currency=self.currency)
        return StockRejected(order_id=self.order_id, reason=self.reason or "out_of_stock")
