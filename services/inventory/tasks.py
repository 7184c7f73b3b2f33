"""The inventory service's Celery surface: thin shells over its handlers."""

from __future__ import annotations

from services.inventory import handlers
from services.inventory.runtime import worker_runtime
from shared.messages.orders import (
    CommitReservation,
    CommitReservations,
    ReleaseReservation,
    ReserveStock,
    ReturnUnits,
)
from shared.messaging.tasks import handles


@handles(ReserveStock)
async def reserve(command: ReserveStock) -> None:
    """Reserve an order's units, all or none."""
    await handlers.reserve_stock((await worker_runtime.get()).uow(), command)


@handles(CommitReservation)
async def commit(command: CommitReservation) -> None:
    """Take a paid order's reserved units out of stock."""
    await handlers.commit_reservation((await worker_runtime.get()).uow(), command)


@handles(CommitReservations)
async def commit_many(command: CommitReservations) -> None:
    """Take several paid orders' reserved units out of stock (commits gathered by the orders
    service's dispatcher)."""
    await handlers.commit_reservations((await worker_runtime.get()).uow(), command)


@handles(ReleaseReservation)
async def release(command: ReleaseReservation) -> None:
    """Give an unpaid order's reserved units back."""
    await handlers.release_reservation((await worker_runtime.get()).uow(), command)


@handles(ReturnUnits)
async def return_units(command: ReturnUnits) -> None:
    """Put a refunded order's units back into stock."""
    await handlers.return_units((await worker_runtime.get()).uow(), command)
