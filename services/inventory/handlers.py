"""Inventory use cases. Each takes a unit of work and owns its transaction."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert

from services.inventory.db import products, reservations
from services.inventory.domain import ProductNotFound, ReservationStatus, in_lock_order
from services.inventory.schemas import ProductIn
from shared.contracts import OrderRef, PricedLine, ReservationResult, ReserveStock
from shared.messaging.topology import TaskName
from shared.messaging.uow import UnitOfWork

log = logging.getLogger(__name__)


async def put_product(uow: UnitOfWork, sku: str, product: ProductIn) -> tuple[dict[str, Any], bool]:
    """Create or replace a product; returns (row, created). Reserved units are kept on replace."""
    async with uow:
        statement = insert(products).values(sku=sku, **product.model_dump())
        statement = statement.on_conflict_do_update(
            index_elements=[products.c.sku],
            set_={**product.model_dump(), "updated_at": func.now()},
            where=products.c.reserved <= statement.excluded.stock,
        ).returning(*products.c, (products.c.created_at == products.c.updated_at).label("new"))
        row = (await uow.session.execute(statement)).mappings().first()
        if row is None:
            raise StockBelowReserved(sku)
        await uow.commit()
        created = bool(row["new"])
        return dict(row), created


class StockBelowReserved(ValueError):
    """A replace would set stock below the units currently reserved."""


async def get_product(uow: UnitOfWork, sku: str) -> dict[str, Any]:
    async with uow:
        row = (await uow.session.execute(select(products).where(products.c.sku == sku))).first()
        if row is None:
            raise ProductNotFound(sku)
        return dict(row._mapping)


async def list_products(uow: UnitOfWork, after: str | None, limit: int) -> list[dict[str, Any]]:
    async with uow:
        query = select(products).order_by(products.c.sku).limit(limit)
        if after is not None:
            query = query.where(products.c.sku > after)
        return [dict(row._mapping) for row in await uow.session.execute(query)]


async def restock(uow: UnitOfWork, sku: str, quantity: int) -> dict[str, Any]:
    async with uow:
        row = (
            await uow.session.execute(
                update(products)
                .where(products.c.sku == sku)
                .values(stock=products.c.stock + quantity, updated_at=func.now())
                .returning(*products.c)
            )
        ).first()
        if row is None:
            raise ProductNotFound(sku)
        await uow.commit()
        return dict(row._mapping)


async def reserve_stock(uow: UnitOfWork, command: ReserveStock) -> None:
    """Reserve every line or none, then tell the orders service the outcome.

    A redelivered command finds its reservation row and re-sends the recorded outcome: the
    answer is repeated, the stock change is not.
    """
    async with uow:
        claimed = await uow.session.execute(
            insert(reservations)
            .values(
                order_id=command.order_id,
                status=ReservationStatus.RESERVED,
                lines=[line.model_dump() for line in command.items],
            )
            .on_conflict_do_nothing()
            .returning(reservations.c.order_id)
        )
        if claimed.first() is None:
            result = await _recorded_outcome(uow, command.order_id)
        else:
            result = await _reserve_lines(uow, command)
        uow.emit(TaskName.APPLY_RESERVATION, **result.model_dump())
        await uow.commit()


async def _reserve_lines(uow: UnitOfWork, command: ReserveStock) -> ReservationResult:
    priced: list[PricedLine] = []
    currency: str | None = None
    # A later line that cannot be reserved undoes the earlier ones. With one line there is
    # nothing to undo, and no savepoint (two round trips) is taken.
    savepoint = await uow.session.begin_nested() if len(command.items) > 1 else None
    for line in in_lock_order(command.items):
        row = (
            await uow.session.execute(
                update(products)
                .where(
                    products.c.sku == line.sku,
                    products.c.stock - products.c.reserved >= line.quantity,
                )
                .values(reserved=products.c.reserved + line.quantity, updated_at=func.now())
                .returning(products.c.price, products.c.currency)
            )
        ).first()
        if row is None:
            if savepoint is not None:
                await savepoint.rollback()
            reason = await _why_not_reservable(uow, line.sku)
            await _set_reservation(uow, command.order_id, ReservationStatus.REJECTED, reason=reason)
            return ReservationResult(order_id=command.order_id, outcome="rejected", reason=reason)
        priced.append(PricedLine(sku=line.sku, quantity=line.quantity, unit_price=row.price))
        currency = row.currency
    if savepoint is not None:
        await savepoint.commit()
    await _set_reservation(
        uow, command.order_id, ReservationStatus.RESERVED, lines=priced, currency=currency
    )
    return ReservationResult(
        order_id=command.order_id, outcome="reserved", lines=priced, currency=currency
    )


async def _why_not_reservable(uow: UnitOfWork, sku: str) -> str:
    exists = await uow.session.scalar(select(products.c.sku).where(products.c.sku == sku))
    return "out_of_stock" if exists else "unknown_sku"


async def _set_reservation(
    uow: UnitOfWork,
    order_id: str,
    status: ReservationStatus,
    reason: str | None = None,
    lines: list[PricedLine] | None = None,
    currency: str | None = None,
) -> None:
    values: dict[str, Any] = {"status": status, "reason": reason, "updated_at": func.now()}
    if lines is not None:
        values["lines"] = [line.model_dump() for line in lines]
        values["currency"] = currency
    await uow.session.execute(
        update(reservations).where(reservations.c.order_id == order_id).values(**values)
    )


async def _recorded_outcome(uow: UnitOfWork, order_id: str) -> ReservationResult:
    row = (
        await uow.session.execute(select(reservations).where(reservations.c.order_id == order_id))
    ).one()
    if row.status == ReservationStatus.REJECTED:
        return ReservationResult(order_id=order_id, outcome="rejected", reason=row.reason)
    lines = [PricedLine.model_validate(line) for line in row.lines]
    return ReservationResult(
        order_id=order_id, outcome="reserved", lines=lines, currency=row.currency
    )


async def commit_reservation(uow: UnitOfWork, command: OrderRef) -> None:
    """The order is paid: its reserved units leave stock for good."""
    await _settle(uow, command.order_id, ReservationStatus.COMMITTED, take_from_stock=True)


async def release_reservation(uow: UnitOfWork, command: OrderRef) -> None:
    """The order will not be paid: its reserved units become available again."""
    await _settle(uow, command.order_id, ReservationStatus.RELEASED, take_from_stock=False)


async def return_units(uow: UnitOfWork, command: OrderRef) -> None:
    """The paid order was refunded: its units go back into stock."""
    async with uow:
        row = await _locked_reservation(uow, command.order_id)
        if row is None or row.status != ReservationStatus.COMMITTED:
            log.info("reservation %s is not committed; nothing to return", command.order_id)
            return
        for line in sorted(row.lines, key=lambda line: line["sku"]):
            await uow.session.execute(
                update(products)
                .where(products.c.sku == line["sku"])
                .values(stock=products.c.stock + line["quantity"], updated_at=func.now())
            )
        await _set_reservation(uow, command.order_id, ReservationStatus.RETURNED)
        await uow.commit()


async def _locked_reservation(uow: UnitOfWork, order_id: str) -> Any:
    return (
        await uow.session.execute(
            select(reservations).where(reservations.c.order_id == order_id).with_for_update()
        )
    ).first()


async def _settle(
    uow: UnitOfWork, order_id: str, outcome: ReservationStatus, take_from_stock: bool
) -> None:
    async with uow:
        row = await _locked_reservation(uow, order_id)
        if row is None or row.status != ReservationStatus.RESERVED:
            log.info(
                "reservation %s is %s; nothing to %s",
                order_id,
                row.status if row else "absent",
                outcome,
            )
            return
        for line in sorted(row.lines, key=lambda line: line["sku"]):
            values: dict[str, Any] = {
                "reserved": products.c.reserved - line["quantity"],
                "updated_at": func.now(),
            }
            if take_from_stock:
                values["stock"] = products.c.stock - line["quantity"]
            await uow.session.execute(
                update(products).where(products.c.sku == line["sku"]).values(**values)
            )
        await _set_reservation(uow, order_id, outcome)
        await uow.commit()
