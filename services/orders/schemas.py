"""HTTP models of the orders API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, EmailStr, Field, StringConstraints, field_validator

from services.orders.domain import OrderStatus
from shared.input_models import SINGLE_LINE, StrictModel

SKU_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
# Stripe's payment method ids and test tokens: `pm_card_visa`, `pm_1Abc...`.
PAYMENT_METHOD_PATTERN = r"^[A-Za-z0-9_]{1,100}$"
Strict = StrictModel  # the name the routes of this service were written against


class CustomerIn(Strict):
    id: Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=SINGLE_LINE)]
    email: EmailStr


class ItemIn(Strict):
    sku: Annotated[str, StringConstraints(pattern=SKU_PATTERN)]
    quantity: int = Field(ge=1, le=100)


class OrderIn(Strict):
    customer: CustomerIn
    items: list[ItemIn] = Field(min_length=1, max_length=50)
    payment_method: Annotated[str, StringConstraints(pattern=PAYMENT_METHOD_PATTERN)]

    @field_validator("items")
    @classmethod
    def _distinct_skus(cls, items: list[ItemIn]) -> list[ItemIn]:
        skus = [item.sku for item in items]
        if len(set(skus)) != len(skus):
            raise ValueError("each sku may appear once")
        return items


class Customer(BaseModel):
    id: str
    email: str


class Item(BaseModel):
    sku: str
    quantity: int
    unit_price: int | None = Field(description="Minor units; null until the order is priced.")


class Payment(BaseModel):
    status: str
    intent_id: str | None
    refund_reason: str | None = Field(
        default=None,
        description="Why the money went back: `requested`, or `paid_after_cancelled` / "
        "`paid_after_payment_failed` when the provider took it after the order had ended.",
    )


class Order(BaseModel):
    id: str
    status: OrderStatus
    reason: str | None
    customer: Customer
    items: list[Item]
    total: int | None
    currency: str | None
    payment: Payment | None
    created_at: datetime
    updated_at: datetime


class OrderList(BaseModel):
    items: list[Order]
    next_cursor: str | None
