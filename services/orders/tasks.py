"""The orders service's Celery surface: order state changes and the payment tasks."""

from __future__ import annotations

from datetime import timedelta

from services.orders import billing, handlers
from services.orders.payments import TransientPaymentError
from services.orders.runtime import worker_runtime
from shared.contracts import ExpireReservations, OrderRef, ReservationResult
from shared.messaging.tasks import task
from shared.messaging.topology import TaskName

# Provider failures are retried with exponential backoff and jitter, then dead-lettered.
PAYMENT_RETRY = {
    "autoretry_for": (TransientPaymentError,),
    "retry_backoff": 1,
    "retry_backoff_max": 30,
    "retry_jitter": True,
    "max_retries": 8,
}


@task(TaskName.APPLY_RESERVATION, ReservationResult)
async def apply_reservation(result: ReservationResult) -> None:
    """Record the inventory's answer on the order."""
    await handlers.apply_reservation((await worker_runtime.get()).uow(), result)


@task(TaskName.CHARGE, OrderRef, **PAYMENT_RETRY)
async def charge(command: OrderRef) -> None:
    """Charge a reserved order, at most once in effect."""
    runtime = await worker_runtime.get()
    await billing.charge_order(runtime.uow(), runtime.payments, command)


@task(TaskName.REFUND, OrderRef, **PAYMENT_RETRY)
async def refund(command: OrderRef) -> None:
    """Refund a charged order, at most once in effect."""
    runtime = await worker_runtime.get()
    await billing.refund_order(runtime.uow(), runtime.payments, command)


@task(TaskName.EXPIRE_RESERVATIONS, ExpireReservations)
async def expire_reservations(command: ExpireReservations) -> None:
    """Cancel orders that never finished and release their units (run by beat)."""
    runtime = await worker_runtime.get()
    seconds = command.older_than_seconds
    if seconds is None:
        seconds = runtime.settings.reservation_timeout_seconds
    await handlers.expire_reservations(runtime.uow(), timedelta(seconds=seconds))
