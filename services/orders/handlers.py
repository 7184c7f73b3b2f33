"""Order use cases. Each takes a unit of work and owns its transaction."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Boolean, bindparam, func, select, text, tuple_
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import RowMapping

from services.orders.db import idempotency_keys, orders
from services.orders.domain import (
    OrderStatus,
    fingerprint,
    key_scope,
    new_order_id,
    order_total,
)
from services.orders.repository import (
    emit_mail,
    load_order,
    set_payment,
    set_status,
)
from shared.contracts import ReservationResult
from shared.messaging.outbox import outbox_values
from shared.messaging.topology import TaskName
from shared.messaging.uow import UnitOfWork

log = logging.getLogger(__name__)


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
    order: RowMapping
    replayed: bool


# One statement places an order, committed by PostgreSQL itself (autocommit: no BEGIN and no
# COMMIT round trips): take the key's advisory lock (a concurrent request with the same key
# gets 409 instead of waiting), claim the key, insert the order and its reserve task's outbox
# row. Nothing is written when the lock is taken elsewhere or the key exists. (Profiled: the
# five statements and the transaction this replaces were over a third of the request's CPU;
# docs/benchmarks.md, "Intake".)
_PLACE = text(
    """
    WITH lock AS (
        SELECT pg_try_advisory_xact_lock(hashtextextended(:scope || :key, 0)) AS held
    ), claimed AS (
        INSERT INTO idempotency_keys (scope, key, fingerprint, order_id)
        SELECT :scope, :key, :fingerprint, :order_id FROM lock WHERE held
        ON CONFLICT (scope, key) DO NOTHING
        RETURNING order_id
    ), placed AS (
        INSERT INTO orders (id, status, customer_id, customer_email, payment_method, items)
        SELECT order_id, :status, :customer_id, :customer_email, :payment_method, :items
        FROM claimed
        RETURNING *
    ), queued AS (
        INSERT INTO outbox (task_id, task_name, kwargs, correlation_id)
        SELECT :task_id, :task_name, :kwargs, :correlation_id FROM placed
    )
    SELECT lock.held, placed.* FROM lock LEFT JOIN placed ON true
    """
)
_PLACE = _PLACE.bindparams(
    bindparam("items", type_=JSONB), bindparam("kwargs", type_=JSONB)
).columns(held=Boolean, items=JSONB)


async def place_order(uow: UnitOfWork, command: PlaceOrder) -> Placed:
    """Accept an order: the row, its idempotency record and the reserve task commit together."""
    scope, digest = key_scope(command.api_key), fingerprint(command.body)
    body = command.body
    order_id = new_order_id()
    reserve = uow.task(TaskName.RESERVE, order_id=order_id, items=body["items"])
    [row] = await uow.execute_alone(
        _PLACE,
        {
            "scope": scope,
            "key": command.idempotency_key,
            "fingerprint": digest,
            "order_id": order_id,
            "status": OrderStatus.PENDING.value,
            "customer_id": body["customer"]["id"],
            "customer_email": body["customer"]["email"],
            "payment_method": body["payment_method"],
            "items": [{**item, "unit_price": None} for item in body["items"]],
            **outbox_values(reserve),
        },
    )
    if not row["held"]:
        raise IdempotencyKeyInFlight
    if row["id"] is None:  # the key was used before: replay, or refuse another body
        async with uow:
            return await _replay(uow, scope, command.idempotency_key, digest)
    uow.dispatch([reserve])  # its outbox row committed with the order
    return Placed(row, replayed=False)


async def _replay(uow: UnitOfWork, scope: str, key: str, digest: str) -> Placed:
    previous = (
        await uow.session.execute(
            select(idempotency_keys).where(
                idempotency_keys.c.scope == scope, idempotency_keys.c.key == key
            )
        )
    ).one()
    if previous.fingerprint != digest:
        raise IdempotencyKeyReused
    return Placed(await load_order(uow, previous.order_id), replayed=True)


async def get_order(uow: UnitOfWork, order_id: str) -> RowMapping:
    async with uow:
        return await load_order(uow, order_id)


async def list_orders(
    uow: UnitOfWork, customer_id: str | None, after: tuple[datetime, str] | None, limit: int
) -> list[RowMapping]:
    """Newest first; the cursor is the (created_at, id) of the last order seen."""
    query = select(orders).order_by(orders.c.created_at.desc(), orders.c.id.desc()).limit(limit)
    if customer_id is not None:
        query = query.where(orders.c.customer_id == customer_id)
    if after is not None:
        query = query.where(tuple_(orders.c.created_at, orders.c.id) < tuple_(*after))
    async with uow:
        return list((await uow.session.execute(query)).mappings())


async def apply_reservation(uow: UnitOfWork, result: ReservationResult) -> None:
    """Record the inventory's answer: price and charge a reserved order, or reject it."""
    async with uow:
        order = await load_order(uow, result.order_id, lock=True)
        if order["status"] != OrderStatus.PENDING:
            if result.outcome == "reserved" and order["status"] == OrderStatus.CANCELLED:
                # Cancelled while the reservation was on its way: give the units back.
                uow.emit(TaskName.RELEASE, order_id=order["id"])
                await uow.commit()
            else:
                log.info(
                    "order %s already %s; reservation answer ignored", order["id"], order["status"]
                )
            return
        if result.outcome == "reserved":
            lines = [line.model_dump() for line in result.lines]
            await set_status(
                uow,
                order,
                OrderStatus.RESERVED,
                items=lines,
                total=order_total(lines),
                currency=result.currency,
            )
            uow.emit(TaskName.CHARGE, order_id=order["id"])
        else:
            await set_status(uow, order, OrderStatus.REJECTED, reason=result.reason)
            emit_mail(uow, order, "order_rejected", reason=result.reason)
        await uow.commit()


class OrderIsFinal(Exception):
    """A final order cannot be cancelled (409)."""


async def cancel_order(uow: UnitOfWork, order_id: str) -> RowMapping:
    """Cancel an unpaid order at once (units released); refund a paid one asynchronously."""
    async with uow:
        order = await load_order(uow, order_id, lock=True)
        if order["status"] in (OrderStatus.PENDING, OrderStatus.RESERVED):
            await _cancel(uow, order, reason="requested")
        elif order["status"] == OrderStatus.PAID:
            if order["payment_status"] != "refund_pending":
                await set_payment(uow, order, payment_status="refund_pending")
                uow.emit(TaskName.REFUND, order_id=order_id)
        else:
            raise OrderIsFinal(order["status"])
        await uow.commit()
    return await get_order(uow, order_id)


async def _cancel(uow: UnitOfWork, order: RowMapping, reason: str) -> None:
    await set_status(uow, order, OrderStatus.CANCELLED, reason=reason)
    uow.emit(TaskName.RELEASE, order_id=order["id"])
    emit_mail(uow, order, "order_cancelled", reason=reason)


async def expire_reservations(uow: UnitOfWork, older_than: timedelta, batch: int = 200) -> int:
    """Cancel orders that never finished (reason `reservation_expired`), releasing their units.

    A charge task that arrives afterwards finds the order cancelled and charges nothing.
    Rows are taken with SKIP LOCKED, so concurrent sweeps share the work.
    """
    expired = 0
    while True:
        async with uow:
            rows = (
                (
                    await uow.session.execute(
                        select(orders)
                        .where(
                            orders.c.status.in_((OrderStatus.PENDING, OrderStatus.RESERVED)),
                            orders.c.created_at < func.now() - older_than,
                        )
                        .order_by(orders.c.created_at)
                        .limit(batch)
                        .with_for_update(skip_locked=True)
                    )
                )
                .mappings()
                .all()
            )
            for order in rows:
                await _cancel(uow, order, reason="reservation_expired")
            await uow.commit()
        expired += len(rows)
        if len(rows) < batch:
            if expired:
                log.info("expired %d order(s) older than %s", expired, older_than)
            return expired
