"""Order use cases. Each takes a unit of work and owns its transaction."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import RowMapping

from services.orders.db import idempotency_keys, orders
from services.orders.domain import (
    OrderStatus,
    fingerprint,
    key_scope,
    new_order_id,
    order_total,
    transition,
)
from services.orders.payments import ChargeOutcome, StripeGateway
from shared.contracts import MailKind, OrderRef, ReservationResult
from shared.queues import TaskName
from shared.uow import UnitOfWork

log = logging.getLogger(__name__)


class OrderNotFound(LookupError):
    pass


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


async def place_order(uow: UnitOfWork, command: PlaceOrder) -> Placed:
    """Accept an order: the row, its idempotency record and the reserve task commit together."""
    scope, digest = key_scope(command.api_key), fingerprint(command.body)
    async with uow:
        # A concurrent request with the same key must not wait on this one: it gets 409.
        locked = await uow.session.scalar(
            select(
                func.pg_try_advisory_xact_lock(
                    func.hashtextextended(scope + command.idempotency_key, 0)
                )
            )
        )
        if not locked:
            raise IdempotencyKeyInFlight
        previous = (
            await uow.session.execute(
                select(idempotency_keys).where(
                    idempotency_keys.c.scope == scope,
                    idempotency_keys.c.key == command.idempotency_key,
                )
            )
        ).first()
        if previous is not None:
            if previous.fingerprint != digest:
                raise IdempotencyKeyReused
            return Placed(await _order(uow, previous.order_id), replayed=True)
        order_id = new_order_id()
        body = command.body
        items = [{**item, "unit_price": None} for item in body["items"]]
        row = (
            (
                await uow.session.execute(
                    insert(orders)
                    .values(
                        id=order_id,
                        status=OrderStatus.PENDING,
                        customer_id=body["customer"]["id"],
                        customer_email=body["customer"]["email"],
                        payment_method=body["payment_method"],
                        items=items,
                    )
                    .returning(*orders.c)
                )
            )
            .mappings()
            .one()
        )
        await uow.session.execute(
            insert(idempotency_keys).values(
                scope=scope, key=command.idempotency_key, fingerprint=digest, order_id=order_id
            )
        )
        uow.emit(TaskName.RESERVE, order_id=order_id, items=body["items"])
        await uow.commit()
        return Placed(row, replayed=False)


async def _order(uow: UnitOfWork, order_id: str, lock: bool = False) -> RowMapping:
    query = select(orders).where(orders.c.id == order_id)
    if lock:
        query = query.with_for_update()
    row = (await uow.session.execute(query)).mappings().first()
    if row is None:
        raise OrderNotFound(order_id)
    return row


async def get_order(uow: UnitOfWork, order_id: str) -> RowMapping:
    async with uow:
        return await _order(uow, order_id)


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
        order = await _order(uow, result.order_id, lock=True)
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
            await _set(
                uow,
                order,
                OrderStatus.RESERVED,
                items=lines,
                total=order_total(lines),
                currency=result.currency,
            )
            uow.emit(TaskName.CHARGE, order_id=order["id"])
        else:
            await _set(uow, order, OrderStatus.REJECTED, reason=result.reason)
            _mail(uow, order, "order_rejected", reason=result.reason)
        await uow.commit()


async def charge_order(uow: UnitOfWork, gateway: StripeGateway, command: OrderRef) -> None:
    """Charge a reserved order once, then record paid or payment_failed.

    The provider call happens outside any transaction; the idempotency key makes a repeat of
    it harmless, and the status is re-checked under a row lock before anything is written.
    """
    async with uow:
        order = await _order(uow, command.order_id)
    if order["status"] != OrderStatus.RESERVED:
        log.info("order %s is %s: nothing to charge", order["id"], order["status"])
        return
    outcome = await gateway.charge(
        order["id"], order["total"], order["currency"], order["payment_method"]
    )
    async with uow:
        order = await _order(uow, command.order_id, lock=True)
        if order["status"] == OrderStatus.RESERVED:
            _record_charge(uow, order, outcome)
            await _set_after_charge(uow, order, outcome)
        elif outcome.succeeded and order["payment_intent_id"] is None:
            # Cancelled or expired while the provider was charging: pay the money back.
            log.warning(
                "order %s became %s during its charge; refunding", order["id"], order["status"]
            )
            await _set(
                uow,
                order,
                OrderStatus(order["status"]),
                check=False,
                payment_status="succeeded",
                payment_intent_id=outcome.intent_id,
            )
            uow.emit(TaskName.REFUND, order_id=order["id"])
        await uow.commit()


def _record_charge(uow: UnitOfWork, order: RowMapping, outcome: ChargeOutcome) -> None:
    if outcome.succeeded:
        uow.emit(TaskName.COMMIT, order_id=order["id"])
        _mail(uow, order, "order_confirmation")
    else:
        uow.emit(TaskName.RELEASE, order_id=order["id"])
        _mail(uow, order, "payment_failed", reason=outcome.reason)


async def _set_after_charge(uow: UnitOfWork, order: RowMapping, outcome: ChargeOutcome) -> None:
    if outcome.succeeded:
        await _set(
            uow,
            order,
            OrderStatus.PAID,
            payment_status="succeeded",
            payment_intent_id=outcome.intent_id,
        )
    else:
        await _set(
            uow,
            order,
            OrderStatus.PAYMENT_FAILED,
            reason=outcome.reason,
            payment_status="failed",
            payment_intent_id=outcome.intent_id,
        )


async def _set(
    uow: UnitOfWork, order: RowMapping, target: OrderStatus, check: bool = True, **values: Any
) -> None:
    """The one place an order's status is written, after the transition check."""
    if check:
        transition(order["id"], order["status"], target)
    await uow.session.execute(
        update(orders)
        .where(orders.c.id == order["id"])
        .values(status=target, updated_at=func.now(), **values)
    )


def _mail(uow: UnitOfWork, order: RowMapping, kind: MailKind, **extra: Any) -> None:
    uow.emit(
        TaskName.SEND_ORDER_MAIL,
        order_id=order["id"],
        kind=kind,
        to=order["customer_email"],
        total=order["total"],
        currency=order["currency"],
        **{key: value for key, value in extra.items() if value is not None},
    )
