"""Charging and refunding: at most one successful charge per order, whatever is repeated.

The provider is called outside any transaction (it takes ~200 ms); its idempotency key, derived
from the order id, makes a repeated call return the first answer, and the order's status is
re-checked under a row lock before the outcome is written.
"""

from __future__ import annotations

import logging

from sqlalchemy.engine import RowMapping

from services.orders.domain import OrderStatus
from services.orders.payments import ChargeOutcome, StripeGateway
from services.orders.repository import (
    emit_mail,
    load_order,
    read_order,
    set_payment,
    set_status,
)
from shared.contracts import OrderRef
from shared.messaging.topology import TaskName
from shared.messaging.uow import UnitOfWork

log = logging.getLogger(__name__)


async def charge_order(uow: UnitOfWork, gateway: StripeGateway, command: OrderRef) -> None:
    """Charge a reserved order once, then record paid or payment_failed."""
    order = await read_order(uow, command.order_id)
    if order["status"] != OrderStatus.RESERVED:
        log.info("order %s is %s: nothing to charge", order["id"], order["status"])
        return
    outcome = await gateway.charge(
        order["id"], order["total"], order["currency"], order["payment_method"]
    )
    await settle_charge(uow, command.order_id, outcome)


# Payment states in which the order already holds (or gave back) the money of its intent.
MONEY_RECORDED = frozenset({"succeeded", "refund_pending", "refunded"})


def changes(order: RowMapping, outcome: ChargeOutcome) -> bool:
    """Whether `outcome` still changes `order`: it was not recorded, or money came in for an
    order that is no longer waiting for it (and must be paid back)."""
    return order["status"] == OrderStatus.RESERVED or (
        outcome.succeeded and order["payment_status"] not in MONEY_RECORDED
    )


async def settle_charge(uow: UnitOfWork, order_id: str, outcome: ChargeOutcome) -> None:
    """Record a charge's outcome, from the charge task or a Stripe webhook, at most once."""
    async with uow:
        order = await load_order(uow, order_id, lock=True)
        if not changes(order, outcome):
            # The charge task and the webhook both report each charge: the second is expected.
            log.debug("order %s is %s: charge outcome already recorded", order_id, order["status"])
            return
        if order["status"] == OrderStatus.RESERVED:
            await _record_outcome(uow, order, outcome)
        else:
            await _refund_late_payment(uow, order, outcome)
        await uow.commit()


async def _refund_late_payment(uow: UnitOfWork, order: RowMapping, outcome: ChargeOutcome) -> None:
    """The provider took money for an order already cancelled, expired or recorded as
    failed (a success that arrived late or out of order): pay it back, and say why."""
    why = f"paid_after_{order['status']}"
    log.warning("order %s: %s; refunding intent %s", order["id"], why, outcome.intent_id)
    await set_payment(
        uow,
        order,
        payment_status="succeeded",
        payment_intent_id=outcome.intent_id,
        refund_reason=why,
    )
    uow.emit(TaskName.REFUND, order_id=order["id"])


async def _record_outcome(uow: UnitOfWork, order, outcome: ChargeOutcome) -> None:
    if outcome.succeeded:
        await set_status(
            uow,
            order,
            OrderStatus.PAID,
            payment_status="succeeded",
            payment_intent_id=outcome.intent_id,
        )
        uow.emit(TaskName.COMMIT, order_id=order["id"])
        emit_mail(uow, order, "order_confirmation")
    else:
        await set_status(
            uow,
            order,
            OrderStatus.PAYMENT_FAILED,
            reason=outcome.reason,
            payment_status="failed",
            payment_intent_id=outcome.intent_id,
        )
        uow.emit(TaskName.RELEASE, order_id=order["id"])
        emit_mail(uow, order, "payment_failed", reason=outcome.reason)


async def refund_order(uow: UnitOfWork, gateway: StripeGateway, command: OrderRef) -> None:
    """Refund a charged order once; a paid order becomes `refunded` and its units return."""
    order = await read_order(uow, command.order_id)
    if order["payment_status"] == "refunded" or order["payment_intent_id"] is None:
        log.info("order %s: nothing to refund", order["id"])
        return
    await gateway.refund(order["id"], order["payment_intent_id"])
    async with uow:
        order = await load_order(uow, command.order_id, lock=True)
        if order["payment_status"] == "refunded":
            return
        if order["status"] == OrderStatus.PAID:
            await set_status(
                uow,
                order,
                OrderStatus.REFUNDED,
                reason="requested",
                payment_status="refunded",
                refund_reason="requested",
            )
            uow.emit(TaskName.RETURN, order_id=order["id"])
            emit_mail(uow, order, "order_cancelled", reason="refunded")
        else:  # charged while it was being cancelled: only the money moves back
            await set_payment(uow, order, payment_status="refunded")
        await uow.commit()
