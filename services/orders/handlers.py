"""Order use cases. Each takes a unit of work and owns its transaction."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import Gauge

from services.orders.domain import (
    OrderStatus,
    fingerprint,
    key_scope,
    new_order_id,
    order_mail,
    order_total,
)
from services.orders.repository import KeyClaim, NewOrder, Order, OrdersWork
from shared.messages.inventory import StockRejected, StockReserved
from shared.messages.orders import (
    ChargeOrder,
    OrderLine,
    RefundOrder,
    ReleaseReservation,
    ReserveStock,
)

log = logging.getLogger(__name__)
# Set by whichever orders worker ran the sweep: the alert reads the freshest worker's value
# (OrdersStalled, deploy/prometheus/alerts.yml), so a worker that swept long ago is ignored.
STALLED = Gauge(
    "doorbuster_orders_stalled",
    "Pending orders older than the reservation timeout whose reserve left the outbox and was"
    " not answered, as the last expiry sweep of this worker counted them",
)
STALLED_CHECKED = Gauge(
    "doorbuster_orders_stalled_checked_timestamp_seconds",
    "When this worker last counted doorbuster_orders_stalled (Unix time)",
)


class IdempotencyKeyReused(Exception):
    """The key was used before with another body (422)."""


class IdempotencyKeyInFlight(Exception):
    """A request with this key is still being processed (409)."""


@dataclass(frozen=True)
class PlaceOrder:
    api_key: str
    idempotency_key: str
    body: dict[str, Any]


@dataclass(frozen=True)
class Placed:
    order: Order
    replayed: bool


async def place_order(uow: OrdersWork, command: PlaceOrder) -> Placed:
    """Accept an order: the row, its idempotency record and the reserve task commit together."""
    body = command.body
    claim = KeyClaim(key_scope(command.api_key), command.idempotency_key, fingerprint(body))
    order = NewOrder(
        id=new_order_id(),
        customer_id=body["customer"]["id"],
        customer_email=body["customer"]["email"],
        payment_method=body["payment_method"],
        items=[{**item, "unit_price": None} for item in body["items"]],
    )
    lines = [OrderLine.model_validate(item) for item in body["items"]]
    reserve = uow.emit(ReserveStock(order_id=order.id, items=lines))
    placement = await uow.orders.place(order, claim, reserve)
    if not placement.held:
        raise IdempotencyKeyInFlight
    if placement.order is None:  # the key was used before: replay, or refuse another body
        async with uow:
            return await _replay(uow, claim)
    uow.committed_alone()  # the reserve command's outbox row committed with the order
    return Placed(placement.order, replayed=False)


async def _replay(uow: OrdersWork, claim: KeyClaim) -> Placed:
    recorded, order_id = await uow.orders.key_use(claim.scope, claim.key)
    if recorded != claim.fingerprint:
        raise IdempotencyKeyReused
    return Placed(await uow.orders.get(order_id), replayed=True)


async def get_order(uow: OrdersWork, order_id: str) -> Order:
    async with uow:
        return await uow.orders.get(order_id)


async def list_orders(
    uow: OrdersWork, customer_id: str | None, after: tuple[datetime, str] | None, limit: int
) -> list[Order]:
    """Newest first; the cursor is the (created_at, id) of the last order seen."""
    async with uow:
        return await uow.orders.newest(customer_id, after, limit)


async def record_reservation(uow: OrdersWork, event: StockReserved) -> Order | None:
    """The inventory holds the order's units: price the order. Returns the order to charge
    now (`reserved`), or None when there is nothing to charge.

    The common case is one conditional statement (pending -> reserved), committed alone. A
    redelivered answer finds the order `reserved` already and charges it (the charge is
    idempotent); an order cancelled meanwhile gives its units back."""
    lines = [line.model_dump() for line in event.lines]
    order = await uow.orders.advance(
        event.order_id,
        OrderStatus.PENDING,
        OrderStatus.RESERVED,
        items=lines,
        total=order_total(lines),
        currency=event.currency,
    )
    if order is not None:
        return order
    order = await uow.orders.read(event.order_id)
    if order["status"] == OrderStatus.RESERVED:
        return order
    if order["status"] == OrderStatus.CANCELLED:
        async with uow:
            uow.emit(ReleaseReservation(order_id=order["id"]))
            await uow.commit()
    else:
        _ignored(order)
    return None


async def request_charge(uow: OrdersWork, order: Order) -> None:
    """Queue the charge of a reserved order as its own message (the deprecated answer's path:
    it arrives on the orders pool, which does not charge)."""
    async with uow:
        uow.emit(ChargeOrder(order_id=order["id"]))
        await uow.commit()


async def stock_rejected(uow: OrdersWork, event: StockRejected) -> None:
    """The inventory cannot hold the order's units: reject the order and tell the customer,
    in one conditional statement with the mail's outbox row."""
    order = await uow.orders.read(event.order_id)
    if order["status"] == OrderStatus.PENDING:
        mail = uow.emit(order_mail(order, "order_rejected", reason=event.reason))
        rejected = OrderStatus.REJECTED
        if await uow.orders.advance(
            order["id"], order["status"], rejected, [mail], reason=event.reason
        ):
            uow.committed_alone()
            return
        order = await uow.orders.read(event.order_id)
    _ignored(order)


def _ignored(order: Order) -> None:
    log.info("order %s already %s; reservation answer ignored", order["id"], order["status"])


class OrderIsFinal(Exception):
    """A final order cannot be cancelled (409)."""


async def cancel_order(uow: OrdersWork, order_id: str) -> Order:
    """Cancel an unpaid order at once (units released); refund a paid one asynchronously."""
    async with uow:
        order = await uow.orders.get(order_id, lock=True)
        if order["status"] in (OrderStatus.PENDING, OrderStatus.RESERVED):
            await _cancel(uow, order, reason="requested")
        elif order["status"] == OrderStatus.PAID:
            if order["payment_status"] != "refund_pending":
                await uow.orders.set_payment(order, payment_status="refund_pending")
                uow.emit(RefundOrder(order_id=order_id))
        else:
            raise OrderIsFinal(order["status"])
        await uow.commit()
    return await get_order(uow, order_id)


async def _cancel(uow: OrdersWork, order: Order, reason: str) -> None:
    await uow.orders.set_status(order, OrderStatus.CANCELLED, reason=reason)
    uow.emit(ReleaseReservation(order_id=order["id"]))
    uow.emit(order_mail(order, "order_cancelled", reason=reason))


async def expire_reservations(uow: OrdersWork, allowed: timedelta, batch: int = 200) -> int:
    """Cancel the orders their customer or the provider kept past the timeout (reason
    `reservation_expired`), releasing their units; report the ones the system is late with.

    Expiry blames the right party. The clock starts when the reservation was applied
    (`reserved_at`), not when the order was accepted: the time its reserve spent in the
    outbox or the queues was the system's. From then on only the charge is left, which is
    the provider's (or the customer's) to finish; an order with a message still unpublished
    in the outbox (its charge has not even left) is not expired. `allowed` is the timeout
    plus the payments queue's backlog (tasks.py). Pending orders are never expired: nothing
    of theirs waits on the customer or the provider, and cancelling them for a broker outage
    would break the 202 the storefront was given. Those pending longer than `allowed` with
    nothing left in the outbox are reported instead (`report_stalled`).

    A charge that arrives afterwards finds the order cancelled and charges nothing. Rows are
    taken with SKIP LOCKED, so concurrent sweeps share the work.
    """
    expired = 0
    while True:
        async with uow:
            rows = await uow.orders.expirable(allowed, batch)
            for order in rows:
                await _cancel(uow, order, reason="reservation_expired")
            await uow.commit()
        expired += len(rows)
        if len(rows) < batch:
            break
    if expired:
        log.info("expired %d order(s) reserved more than %s ago", expired, allowed)
    await report_stalled(uow, allowed)
    return expired


STALLED_SHOWN = 5


async def report_stalled(uow: OrdersWork, allowed: timedelta) -> int:
    """Warn about pending orders older than `allowed` whose reserve left the outbox: the
    reserve or its answer waits in a queue (for a minute or two after an outage, normal), in
    the inventory's outbox, or in a dead-letter queue (not normal). They are kept, counted
    (`doorbuster_orders_stalled`) and listed by `make audit`; docs/operations.md says what to
    look at when the count does not fall."""
    count, oldest = await uow.orders.stalled(allowed, STALLED_SHOWN)
    STALLED.set(count)
    STALLED_CHECKED.set_to_current_time()
    if count:
        log.warning(
            "%d pending order(s) older than %s are not reserved yet, their reserve sent"
            " (kept: the system is late, not the customer); oldest: %s",
            count,
            allowed,
            ", ".join(oldest),
        )
    return count
