"""The inventory service's Celery surface: thin shells over its handlers."""

from __future__ import annotations

from services.inventory import handlers
from services.inventory.runtime import worker_runtime
from shared.contracts import OrderRef, ReserveStock
from shared.messaging.tasks import task
from shared.messaging.topology import TaskName


@task(TaskName.RESERVE, ReserveStock)
async def reserve(command: ReserveStock) -> None:
    """Reserve an order's units, all or none."""
    await handlers.reserve_stock((await worker_runtime.get()).uow(), command)


@task(TaskName.COMMIT, OrderRef)
async def commit(command: OrderRef) -> None:
    """Take a paid order's reserved units out of stock."""
    await handlers.commit_reservation((await worker_runtime.get()).uow(), command)


@task(TaskName.RELEASE, OrderRef)
async def release(command: OrderRef) -> None:
    """Give an unpaid order's reserved units back."""
    await handlers.release_reservation((await worker_runtime.get()).uow(), command)


@task(TaskName.RETURN, OrderRef)
async def return_units(command: OrderRef) -> None:
    """Put a refunded order's units back into stock."""
    await handlers.return_units((await worker_runtime.get()).uow(), command)
