"""HTTP models of the inventory API."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from shared.input_models import SINGLE_LINE, StrictModel

SKU_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class ProductIn(StrictModel):
    name: str = Field(min_length=1, max_length=200, pattern=SINGLE_LINE)
    price: int = Field(gt=0, le=100_000_000, description="Minor units (cents).")
    currency: Literal["usd"]
    stock: int = Field(ge=0, le=10_000_000)


class Restock(StrictModel):
    quantity: int = Field(gt=0, le=10_000_000)


class Product(BaseModel):
    sku: str
    name: str
    price: int
    currency: str
    stock: int
    reserved: int
    available: int = Field(description="stock - reserved; never negative.")


class ProductList(BaseModel):
    items: list[Product]
    next_cursor: str | None
