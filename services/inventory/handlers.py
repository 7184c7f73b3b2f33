"""Inventory use cases. Each takes a unit of work and owns its transaction."""

from __future__ import annotations

import logging
from typing import Any

from services.inventory.domain import ProductNotFound, ReservationStatus, in_lock_order
from services.inventory.repository import InventoryWork, Row
from services.inventory.schemas import ProductIn
from shared.messages.inventory import PricedLine, StockRejected, StockReserved
from shared.messages.orders import (
    CommitReservation,
    CommitReservations,
    ReleaseReservation,
    ReserveStock,
    ReturnUnits,
)

log = logging.getLogger(__name__)
Outcome = StockReserved | StockRejected


async def put_product(
    uow: InventoryWork, sku: str, product: ProductIn
) -> tuple[dict[str, Any], bool]:
    """Create or replace a product; returns (row, created). Reserved units are kept on replace."""
    async with uow:
        row = await uow.inventory.put_product(sku, product.model_dump())
        if row is None:
            raise StockBelowReserved(sku)
        await uow.commit()
        return dict(row), bool(row["new"])


class StockBelowReserved(ValueError):
    """A replace would set stock below the units currently reserved."""


async def get_product(uow: InventoryWork, sku: str) -> dict[str, Any]:
    async with uow:
        row = await uow.inventory.product(sku)
        if row is None:
            raise ProductNotFound(sku)
        return dict(row)


async def list_products(uow: InventoryWork, after: str | None, limit: int) -> list[dict[str, Any]]:
    async with uow:
        return [dict(row) for row in await uow.inventory.products_after(after, limit)]


async def restock(uow: InventoryWork, sku: str, quantity: int) -> dict[str, Any]:
    async with uow:
        row = await uow.inventory.restock(sku, quantity)
        if row is None:
            raise ProductNotFound(sku)
        await uow.commit()
        return dict(row)


async def reserve_stock(uow: InventoryWork, command: ReserveStock) -> None:
    """Reserve every line or none, then say which: `inventory.reserved` or `inventory.rejected`.

    A redelivered command finds its reservation row and re-sends the recorded outcome: the
    answer is repeated, the stock change is not. An order of one line (most of them) is
    reserved by one statement and its answer written by a second: a crash in between leaves
    the reservation recorded and the command unacknowledged, so its redelivery sends the
    recorded answer.
    """
    if len(command.items) == 1:
        row = await uow.inventory.reserve_one(command.order_id, command.items[0])
        if row is not None:
            async with uow:
                uow.emit(_answer(row))
                await uow.commit()
            return
    async with uow:
        if await uow.inventory.claim_reservation(command.order_id, command.items):
            outcome = await _reserve_lines(uow, command)
        else:
            outcome = await _recorded_outcome(uow, command.order_id)
        uow.emit(outcome)
        await uow.commit()


async def _reserve_lines(uow: InventoryWork, command: ReserveStock) -> Outcome:
    hold = await uow.inventory.hold(in_lock_order(command.items))
    if hold.short_sku is not None:
        exists = await uow.inventory.sku_exists(hold.short_sku)
        reason = "out_of_stock" if exists else "unknown_sku"
        await uow.inventory.set_reservation(command.order_id, ReservationStatus.REJECTED, reason)
        return StockRejected(order_id=command.order_id, reason=reason)
    assert hold.currency is not None  # a reservation has at least one line
    await uow.inventory.set_reservation(
        command.order_id, ReservationStatus.RESERVED, lines=hold.lines, currency=hold.currency
    )
    return StockReserved(order_id=command.order_id, lines=hold.lines, currency=hold.currency)


async def _recorded_outcome(uow: InventoryWork, order_id: str) -> Outcome:
    row = await uow.inventory.reservation(order_id)
    assert row is not None  # claimed before
    return _answer(row)


def _answer(reservation: Row) -> Outcome:
    """The answer a recorded reservation gives."""
    order_id = reservation["order_id"]
    if reservation["status"] == ReservationStatus.REJECTED:
        return StockRejected(order_id=order_id, reason=reservation["reason"])
    lines = [PricedLine.model_validate(line) for line in reservation["lines"]]
    return StockReserved(order_id=order_id, lines=lines, currency=reservation["currency"])


async def commit_reservation(uow: InventoryWork, command: CommitReservation) -> None:
    """The order is paid: its reserved units leave stock for good."""
    await _settle(uow, command.order_id, "commit")


async def commit_reservations(uow: InventoryWork, command: CommitReservations) -> None:
    """These orders are paid (gathered by their sender): their units leave stock, in one
    statement for them all."""
    moved = await uow.inventory.settle(command.order_ids, "commit")
    if moved < len(command.order_ids):
        # Commits delivered again (the relay, a redelivery) find theirs settled already.
        log.info(
            "%d of %d reservation(s) had nothing to commit",
            len(command.order_ids) - moved,
            len(command.order_ids),
        )


async def release_reservation(uow: InventoryWork, command: ReleaseReservation) -> None:
    """The order will not be paid: its reserved units become available again."""
    await _settle(uow, command.order_id, "release")


async def return_units(uow: InventoryWork, command: ReturnUnits) -> None:
    """The paid order was refunded: its units go back into stock (settling its commit too,
    when the return overtook it)."""
    await _settle(uow, command.order_id, "return")


async def _settle(uow: InventoryWork, order_id: str, settle: str) -> None:
    """One statement: the reservation makes the move (domain.SETTLES) its current status
    allows, with its units, or, if none does (absent, settled by an earlier delivery),
    nothing moves."""
    if not await uow.inventory.settle([order_id], settle):
        log.info("reservation %s: nothing to %s", order_id, settle)
