"""Orders routes: thin. Validate, call a handler, map domain errors to problem+json."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from sqlalchemy.engine import RowMapping

from services.orders import handlers, webhooks
from services.orders.payments import TransientPaymentError
from services.orders.repository import OrderNotFound
from services.orders.schemas import Customer, Item, Order, OrderIn, OrderList, Payment
from shared.infra.observability import tag_order
from shared.messaging.topology import QueueName
from shared.web.auth import scope_to_filter
from shared.web.deps import AppSettings, Runtime, StorefrontKey, UoW
from shared.web.openapi import DOCUMENT_AS_REQUIRED
from shared.web.pagination import decode_cursor, encode_cursor
from shared.web.problems import Problem
from shared.web.shedding import shed_if_backlogged, shed_if_charges_wait

router = APIRouter(prefix="/v1/orders", tags=["orders"])
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Required. The same key and body return the same order.",
        json_schema_extra=DOCUMENT_AS_REQUIRED,
    ),
]


def to_order(row: RowMapping) -> Order:
    payment = (
        Payment(
            status=row["payment_status"],
            intent_id=row["payment_intent_id"],
            refund_reason=row["refund_reason"],
        )
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
    # Checkout sheds last: the orders queue has the highest limit (docs/api.md); and while
    # the charges it leads to wait so long that its reservation would likely expire first.
    dependencies=[
        Depends(shed_if_backlogged(QueueName.ORDERS, QueueName.PAYMENTS)),
        Depends(shed_if_charges_wait()),
    ],
    response_model=Order,
    responses={
        400: {"description": "Idempotency-Key missing"},
        409: {"description": "A request with this Idempotency-Key is still in flight"},
        422: {"description": "Invalid body, or the key was used with another body"},
    },
)
async def place_order(
    body: OrderIn,
    uow: UoW,
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
        placed = await handlers.place_order(uow, command)
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
    order_id: Annotated[str, Path(max_length=40)], uow: UoW, _: StorefrontKey
) -> Order:
    """One order with its current status."""
    tag_order(order_id)
    try:
        return to_order(await handlers.get_order(uow, order_id))
    except OrderNotFound as exc:
        raise _not_found(order_id) from exc


@router.get(
    "",
    response_model=OrderList,
    responses={400: {"description": "A storefront key without `customer_id`, or a bad cursor"}},
)
async def list_orders(
    request: Request,
    uow: UoW,
    api_key: StorefrontKey,
    customer_id: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> OrderList:
    """Orders, newest first, of one customer. A storefront key must give `customer_id`
    (400 without it); the unfiltered list needs an admin key."""
    scope_to_filter(request, api_key, "customer_id", customer_id)
    position = decode_cursor(cursor, 2, (datetime.fromisoformat, str))
    after = (position[0], position[1]) if position else None
    rows = await handlers.list_orders(uow, customer_id, after, limit + 1)
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = encode_cursor([last["created_at"].isoformat(), last["id"]])
    return OrderList(items=[to_order(row) for row in rows[:limit]], next_cursor=next_cursor)


@router.post(
    "/{order_id}/cancel",
    response_model=Order,
    responses={202: {"model": Order}, 409: {"description": "The order is final"}},
)
async def cancel_order(
    order_id: Annotated[str, Path(max_length=40)],
    uow: UoW,
    response: Response,
    _: StorefrontKey,
) -> Order:
    """Cancel an order. `pending`/`reserved`: cancelled now, units released (200).
    `paid`: refunded through Stripe (202; the order becomes `refunded` when the refund is
    done, `payment.status` is `refund_pending` meanwhile). A final order: 409."""
    try:
        row = await handlers.cancel_order(uow, order_id)
    except OrderNotFound as exc:
        raise _not_found(order_id) from exc
    except handlers.OrderIsFinal as exc:
        raise Problem(
            409, "order-is-final", f"The order is {exc} and cannot be cancelled."
        ) from exc
    if row["status"] == "paid":
        response.status_code = 202
    return to_order(row)


webhook_router = APIRouter(tags=["stripe"])


@webhook_router.post("/v1/stripe/webhook", responses={400: {"description": "Bad signature"}})
async def stripe_webhook(
    request: Request, uow: UoW, settings: AppSettings, runtime: Runtime
) -> dict[str, bool]:
    """Stripe events, signed with `STRIPE_WEBHOOK_SECRET` (no bearer key).
    `payment_intent.succeeded` and `payment_intent.payment_failed` reconcile their order
    once the provider's own copy of the PaymentIntent confirms them; others are answered 200
    and change nothing."""
    try:
        event = webhooks.verify(
            await request.body(),
            request.headers.get("stripe-signature"),
            settings.stripe_webhook_secret,
        )
    except webhooks.InvalidWebhook as exc:
        raise Problem(400, "invalid-webhook", f"Webhook refused: {exc}") from exc
    try:
        applied = await webhooks.reconcile(
            uow, runtime.payments, event, grace=settings.webhook_settle_grace_seconds
        )
    except TransientPaymentError as exc:
        # The claim cannot be checked now: the provider delivers the event again later.
        raise Problem(
            503, "provider-unavailable", "The payment provider cannot confirm this event now."
        ) from exc
    return {"received": True, "applied": applied}
