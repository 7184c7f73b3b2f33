"""The orders service's Celery surface: the inventory's answers, the payment tasks and the
expiry sweep. Each is a shell over one handler; the decorator carries the retry policy."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from services.orders import billing, handlers, reconcile
from services.orders.payments import TransientPaymentError
from services.orders.runtime import worker_runtime
from shared.infra.settings import Settings, get_settings
from shared.messages.inventory import ApplyReservation, StockRejected, StockReserved
from shared.messages.orders import (
    ChargeOrder,
    ExpireReservations,
    ReconcilePayments,
    RefundOrder,
)
from shared.messaging.backlog import head_message_wait
from shared.messaging.tasks import handles
from shared.messaging.topology import QueueName

log = logging.getLogger(__name__)


def payment_retry(settings: Settings) -> dict[str, Any]:
    """Provider failures are retried with exponential backoff and jitter, then dead-lettered
    (`PAYMENT_MAX_RETRIES`, `PAYMENT_RETRY_BACKOFF_SECONDS`, `..._MAX_SECONDS`, `..._JITTER`:
    by default 8 retries, 1 s doubling to 30 s, with jitter)."""
    return {
        "autoretry_for": (TransientPaymentError,),
        "retry_backoff": settings.payment_retry_backoff_seconds,
        "retry_backoff_max": settings.payment_retry_backoff_max_seconds,
        "retry_jitter": settings.payment_retry_jitter,
        "max_retries": settings.payment_max_retries,
    }


PAYMENT_RETRY = payment_retry(get_settings())


@handles(StockReserved, **PAYMENT_RETRY)
async def stock_reserved(event: StockReserved) -> None:
    """Price the reserved order and charge it (on the payments pool)."""
    runtime = await worker_runtime.get()
    await billing.charge_reserved(runtime.uow(), runtime.payments, event)


@handles(StockRejected)
async def stock_rejected(event: StockRejected) -> None:
    """Reject the order the inventory could not reserve."""
    await handlers.stock_rejected((await worker_runtime.get()).uow(), event)


@handles(ApplyReservation)
async def apply_reservation(answer: ApplyReservation) -> None:
    """Deprecated: an answer queued before the inventory sent events; applied as one."""
    uow, event = (await worker_runtime.get()).uow(), answer.as_event()
    if isinstance(event, StockRejected):
        await handlers.stock_rejected(uow, event)
    elif order := await handlers.record_reservation(uow, event):
        await handlers.request_charge(uow, order)


@handles(ChargeOrder, **PAYMENT_RETRY)
async def charge(command: ChargeOrder) -> None:
    """Charge a reserved order, at most once in effect."""
    runtime = await worker_runtime.get()
    await billing.charge_order(runtime.uow(), runtime.payments, command)


@handles(RefundOrder, **PAYMENT_RETRY)
async def refund(command: RefundOrder) -> None:
    """Refund a charged order, at most once in effect."""
    runtime = await worker_runtime.get()
    await billing.refund_order(runtime.uow(), runtime.payments, command)


@handles(ExpireReservations)
async def expire_reservations(command: ExpireReservations) -> None:
    """Cancel the orders their customer or the provider kept past the timeout and release
    their units (run by beat); the payments queue's backlog is added to the timeout."""
    runtime = await worker_runtime.get()
    seconds = command.older_than_seconds
    if seconds is None:
        seconds = runtime.settings.reservation_timeout_seconds
    backlog = await payments_backlog(runtime.settings)
    await handlers.expire_reservations(runtime.uow(), timedelta(seconds=seconds + backlog))


async def payments_backlog(settings: Settings) -> float:
    """Seconds the oldest charge in the payments queue has waited; 0 when the management API
    cannot say (the sweep then counts from the reservation alone, and says so)."""
    try:
        return await head_message_wait(
            settings.rabbitmq_management_url, settings.rabbitmq_url, QueueName.PAYMENTS
        )
    except (httpx.HTTPError, ValueError) as exc:
        log.info("expiry sweep: payments backlog unknown (%r); counting none", exc)
        return 0.0


@handles(ReconcilePayments, **PAYMENT_RETRY)
async def reconcile_payments(command: ReconcilePayments) -> None:
    """Compare the orders with the provider's intents and fix what differs (run by beat);
    each finding is logged, one that needs an operator as a warning that stays."""
    runtime = await worker_runtime.get()
    seconds = command.lookback_seconds or runtime.settings.reconcile_lookback_seconds
    since = datetime.now(UTC) - timedelta(seconds=seconds)
    await reconcile.reconcile(runtime.uow(), runtime.payments, since)
