"""Orders routes: thin. Validate, call a handler, map domain errors to problem+json."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Request, Response
from sqlalchemy.engine import RowMapping

from services.orders import handlers
from services.orders.schemas import Customer, Item, Order, OrderIn, OrderList, Payment
from shared.http import Problem, StorefrontKey
from shared.observability import tag_order
from shared.pagination import decode_cursor, encode_cursor
from shared.service_app import runtime_of

router = APIRouter(prefix="/v1/orders", tags=["orders"])
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=255,
        description="Required. The same key and body return the same order.",
    ),
]


def to_order(row: RowMapping) -> Order:
    payment = (
        Payment(status=row["payment_status"], intent_id=row["payment_intent_id"])
        if row["payment_status"]
        else None
    )
    return Order(
        id=row["id"],
        status=row["status"],
        reason=row["reason"],
        customer=Customer(id=row["customer_id"], email=row["customer_email"]),
        items=[Item(**item) for item in row["items"]],
        total=row["total"],
        currency=row["currency"],
        payment=payment,
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _not_found(order_id: str) -> Problem:
    return Problem(404, "order-not-found", f"No order with id {order_id!r}.")


@router.post(
    "",
    status_code=202,
    response_model=Order,
    responses={
        400: {"description": "Idempotency-Key missing"},
        409: {"description": "A request with this Idempotency-Key is still in flight"},
        422: {"description": "Invalid body, or the key was used with another body"},
    },
)
async def place_order(
    body: OrderIn,
    request: Request,
    response: Response,
    api_key: StorefrontKey,
    idempotency_key: IdempotencyKey = None,
) -> Order:
    """Accept an order (202). It is reserved, charged and confirmed asynchronously: follow
    `Location` until its status is final."""
    if not idempotency_key:
        raise Problem(
            400, "idempotency-key-required", "Send an `Idempotency-Key` header (1..255 chars)."
        )
    command = handlers.PlaceOrder(api_key, idempotency_key, body.model_dump(mode="json"))
    try:
        placed = await handlers.place_order(runtime_of(request).uow(), command)
    except handlers.IdempotencyKeyReused as exc:
        raise Problem(
            422, "idempotency-key-reused", "This Idempotency-Key was used with another body."
        ) from exc
    except handlers.IdempotencyKeyInFlight as exc:
        raise Problem(
            409,
            "idempotency-key-in-flight",
            "A request with this Idempotency-Key is still being processed; retry shortly.",
            headers={"Retry-After": "1"},
        ) from exc
    tag_order(placed.order["id"])
    response.headers["Location"] = f"/v1/orders/{placed.order['id']}"
    if placed.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return to_order(placed.order)


@router.get("/{order_id}", response_model=Order)
async def get_order(
    order_id: Annotated[str, Path(max_length=40)], request: Request, _: StorefrontKey
) -> Order:
    """One order with its current status."""
    tag_order(order_id)
    try:
        return to_order(await handlers.get_order(runtime_of(request).uow(), order_id))
    except handlers.OrderNotFound as exc:
        raise _not_found(order_id) from exc


@router.get("", response_model=OrderList)
async def list_orders(
    request: Request,
    _: StorefrontKey,
    customer_id: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> OrderList:
    """Orders, newest first, optionally of one customer."""
    position = decode_cursor(cursor, 2)
    after = (datetime.fromisoformat(position[0]), str(position[1])) if position else None
    rows = await handlers.list_orders(runtime_of(request).uow(), customer_id, after, limit + 1)
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = encode_cursor([last["created_at"].isoformat(), last["id"]])
    return OrderList(items=[to_order(row) for row in rows[:limit]], next_cursor=next_cursor)
