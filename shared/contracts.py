"""Task payloads: what crosses a queue, validated on both ends.

A task's kwargs are one of these models dumped to JSON; the task shell validates them before it
calls a handler, so a malformed message fails loudly (and is dead-lettered) instead of half
running. Ids are passed, never objects: each handler re-reads what it owns.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Sku = str
MailKind = Literal["order_confirmation", "payment_failed", "order_rejected", "order_cancelled"]


class Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OrderLine(Payload):
    sku: Sku
    quantity: int = Field(ge=1, le=100)


class PricedLine(OrderLine):
    unit_price: int = Field(gt=0)


class ReserveStock(Payload):
    order_id: str
    items: list[OrderLine] = Field(min_length=1, max_length=50)


class ReservationResult(Payload):
    order_id: str
    outcome: Literal["reserved", "rejected"]
    reason: Literal["out_of_stock", "unknown_sku"] | None = None
    lines: list[PricedLine] = Field(default_factory=list)
    currency: str | None = None


class OrderRef(Payload):
    """For tasks that need only the order: charge, refund, commit, release."""

    order_id: str


class SendOrderMail(Payload):
    order_id: str
    kind: MailKind
    to: str
    total: int | None = None
    currency: str | None = None
    reason: str | None = None


class ExpireReservations(Payload):
    """Sweep orders older than this (default: RESERVATION_TIMEOUT_SECONDS)."""

    older_than_seconds: int | None = Field(default=None, ge=0)


class CampaignBatch(Payload):
    """One slice of a campaign's audience (`campaign_batch_size` addresses, fixed at creation)."""

    campaign_id: str = Field(min_length=1, max_length=40)
    batch: int = Field(ge=0)
