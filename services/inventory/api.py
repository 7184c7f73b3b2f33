"""Inventory routes: thin. Validate, call a handler, map domain errors to problem+json."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response

from services.inventory import handlers
from services.inventory.domain import ProductNotFound, available
from services.inventory.schemas import SKU_PATTERN, Product, ProductIn, ProductList, Restock
from shared.web.deps import AdminKey, StorefrontKey, UoW
from shared.web.pagination import decode_cursor, encode_cursor
from shared.web.problems import Problem

router = APIRouter(prefix="/v1/products", tags=["products"])
Sku = Annotated[str, Path(pattern=SKU_PATTERN, description="Product SKU")]


def _product(row: dict[str, Any]) -> Product:
    return Product(
        sku=row["sku"],
        name=row["name"],
        price=row["price"],
        currency=row["currency"],
        stock=row["stock"],
        reserved=row["reserved"],
        available=available(row["stock"], row["reserved"]),
    )


def _not_found(sku: str) -> Problem:
    return Problem(404, "product-not-found", f"No product with sku {sku!r}.")


@router.put("/{sku}", response_model=Product, status_code=200, responses={201: {"model": Product}})
async def put_product(
    sku: Sku, body: ProductIn, uow: UoW, response: Response, _: AdminKey
) -> Product:
    """Create (201) or replace (200) a product. Units already reserved are kept."""
    try:
        row, created = await handlers.put_product(uow, sku, body)
    except handlers.StockBelowReserved as exc:
        raise Problem(
            409, "stock-below-reserved", "Stock cannot go below the units already reserved."
        ) from exc
    response.status_code = 201 if created else 200
    return _product(row)


@router.get("/{sku}", response_model=Product)
async def get_product(sku: Sku, uow: UoW, _: StorefrontKey) -> Product:
    """One product with its live `available` count."""
    try:
        return _product(await handlers.get_product(uow, sku))
    except ProductNotFound as exc:
        raise _not_found(sku) from exc


@router.get("", response_model=ProductList)
async def list_products(
    uow: UoW,
    _: StorefrontKey,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> ProductList:
    """Products by sku, `limit` at a time; pass `next_cursor` back for the next page."""
    position = decode_cursor(cursor, 1)
    rows = await handlers.list_products(uow, position[0] if position else None, limit + 1)
    next_cursor = encode_cursor([rows[limit - 1]["sku"]]) if len(rows) > limit else None
    return ProductList(items=[_product(row) for row in rows[:limit]], next_cursor=next_cursor)


@router.post("/{sku}/restock", response_model=Product)
async def restock(sku: Sku, body: Restock, uow: UoW, _: AdminKey) -> Product:
    """Add units to stock."""
    try:
        return _product(await handlers.restock(uow, sku, body.quantity))
    except ProductNotFound as exc:
        raise _not_found(sku) from exc
