"""Charging and refunding: at most one successful charge per order, whatever is repeated.

The provider is called outside any transaction (it takes ~200 ms); its idempotency key, derived
from the order id, makes a repeated call return the first answer, and the order's status is
re-checked under a row lock before the outcome is written.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from services.orders.domain import OrderStatus, order_mail
from services.orders.handlers import record_reservation
from services.orders.payments import (
    ChargeOutcome,
    ProviderIntent,
    StripeGateway,
    TransientPaymentError,
)
from services.orders.repository import Order, OrdersWork
from shared.messages.inventory import StockReserved
from shared.messages.orders import (
    ChargeOrder,
    CommitReservation,
    RefundOrder,
    ReleaseReservation,
    ReturnUnits,
)
from shared.messaging.message import Message

log = logging.getLogger(__name__)


async def charge_reserved(uow: OrdersWork, gateway: StripeGateway, event: StockReserved) -> None:
    """The inventory holds the units: price the order and charge it, in one task (the
    payments pool runs `inventory.reserved`; no separate charge message, no extra hop)."""
    order = await record_reservation(uow, event)
    if order is not None:
        await charge(uow, gateway, order)


async def charge_order(uow: OrdersWork, gateway: StripeGateway, command: ChargeOrder) -> None:
    """Charge a reserved order once, then record paid or payment_failed."""
    order = await uow.orders.read(command.order_id)
    if order["status"] != OrderStatus.RESERVED:
        log.info("order %s is %s: nothing to charge", order["id"], order["status"])
        return
    await charge(uow, gateway, order)


async def charge(uow: OrdersWork, gateway: StripeGateway, order: Order) -> None:
    """Charge a `reserved` order (its idempotency key makes a repeat return the first
    answer), then record the outcome under the order's lock.

    The key is first used after the order was created, so while the order is younger than
    the provider keeps keys (`gateway.key_trust`) the key alone prevents a second charge:
    one provider call, nothing written before it. An older order (a charge redriven from the
    dead letters a day later) may have an intent whose key is forgotten, so its intents are
    looked up by order id first, and one found is read (or confirmed), never made again."""
    outcome = None
    if datetime.now(UTC) - order["created_at"] >= gateway.key_trust:
        outcome = await _existing_charge(gateway, order)
    if outcome is None:
        outcome = await gateway.charge(
            order["id"], order["total"], order["currency"], order["payment_method"]
        )
    await settle_charge(uow, order["id"], outcome, seen=order)


async def _existing_charge(gateway: StripeGateway, order: Order) -> ChargeOutcome | None:
    """The outcome of an intent the provider already holds for `order`, or None (none yet:
    create one). A succeeded intent wins; one still processing is retried later."""
    intents = await gateway.find_intents(order["id"])
    log.warning(
        "order %s is older than the provider's idempotency keys: found %d intent(s) for it",
        order["id"],
        len(intents),
    )
    succeeded = [intent for intent in intents if intent.status == "succeeded"]
    if succeeded:
        return min(succeeded, key=lambda intent: intent.created).outcome()
    for intent in intents:
        if intent.status == "requires_confirmation":
            return await gateway.confirm(order["id"], intent.id, order["payment_method"])
        if intent.status in ("processing", "requires_action", "requires_capture"):
            raise TransientPaymentError(f"intent {intent.id} is {intent.status}")
    declined = [intent for intent in intents if _declined(intent)]
    return declined[0].outcome() if declined else None


def _declined(intent: ProviderIntent) -> bool:
    return intent.status == "requires_payment_method" and intent.error_code is not None


# Payment states in which the order already holds (or gave back) the money of its intent.
MONEY_RECORDED = frozenset({"succeeded", "refund_pending", "refunded"})


def changes(order: Order, outcome: ChargeOutcome) -> bool:
    """Whether `outcome` still changes `order`: it was not recorded, or money came in for an
    order that is no longer waiting for it (and must be paid back)."""
    return order["status"] == OrderStatus.RESERVED or (
        outcome.succeeded and order["payment_status"] not in MONEY_RECORDED
    )


async def settle_charge(
    uow: OrdersWork, order_id: str, outcome: ChargeOutcome, seen: Order | None = None
) -> None:
    """Record a charge's outcome, from the charge task or a Stripe webhook, at most once.

    `seen`, the order as read before the charge: while it is still `reserved`, the outcome
    and its messages are written by one conditional statement (no lock wait, one round
    trip); anything else is decided under the order's row lock."""
    if seen is not None and seen["status"] == OrderStatus.RESERVED:
        target, values, messages = _outcome(seen, outcome)
        emitting = [uow.emit(message) for message in messages]
        if await uow.orders.advance(order_id, OrderStatus.RESERVED, target, emitting, **values):
            uow.committed_alone()
            return
    async with uow:
        order = await uow.orders.get(order_id, lock=True)
        if not changes(order, outcome):
            # The charge task and the webhook both report each charge: the second is expected.
            log.debug("order %s is %s: charge outcome already recorded", order_id, order["status"])
            return
        if order["status"] == OrderStatus.RESERVED:
            target, values, messages = _outcome(order, outcome)
            await uow.orders.set_status(order, target, **values)
            for message in messages:
                uow.emit(message)
        else:
            await _refund_late_payment(uow, order, outcome)
        await uow.commit()


def _outcome(order: Order, outcome: ChargeOutcome) -> tuple[OrderStatus, dict, list[Message]]:
    """What a charge's outcome makes of a reserved order: its status, the payment fields, and
    the messages (the units committed and a confirmation, or released and a failure mail)."""
    if outcome.succeeded:
        values = {"payment_status": "succeeded", "payment_intent_id": outcome.intent_id}
        return (
            OrderStatus.PAID,
            values,
            [CommitReservation(order_id=order["id"]), order_mail(order, "order_confirmation")],
        )
    values = {
        "reason": outcome.reason,
        "payment_status": "failed",
        "payment_intent_id": outcome.intent_id,
    }
    return (
        OrderStatus.PAYMENT_FAILED,
        values,
        [
            ReleaseReservation(order_id=order["id"]),
            order_mail(order, "payment_failed", reason=outcome.reason),
        ],
    )


async def _refund_late_payment(uow: OrdersWork, order: Order, outcome: ChargeOutcome) -> None:
    """The provider took money for an order already cancelled, expired or recorded as
    failed (a success that arrived late or out of order): pay it back, and say why."""
    why = f"paid_after_{order['status']}"
    log.warning("order %s: %s; refunding intent %s", order["id"], why, outcome.intent_id)
    await uow.orders.set_payment(
        order,
        payment_status="succeeded",
        payment_intent_id=outcome.intent_id,
        refund_reason=why,
    )
    uow.emit(RefundOrder(order_id=order["id"]))


async def refund_order(uow: OrdersWork, gateway: StripeGateway, command: RefundOrder) -> None:
    """Refund a charged order once; a paid order becomes `refunded` and its units return."""
    order = await uow.orders.read(command.order_id)
    if order["payment_status"] == "refunded" or order["payment_intent_id"] is None:
        log.info("order %s: nothing to refund", order["id"])
        return
    await gateway.refund(order["id"], order["payment_intent_id"])
    async with uow:
        order = await uow.orders.get(command.order_id, lock=True)
        if order["payment_status"] == "refunded":
            return
        if order["status"] == OrderStatus.PAID:
            await uow.orders.set_status(
                order,
                OrderStatus.REFUNDED,
                reason="requested",
                payment_status="refunded",
                refund_reason="requested",
            )
            uow.emit(ReturnUnits(order_id=order["id"]))
            uow.emit(order_mail(order, "order_cancelled", reason="refunded"))
        else:  # charged while it was being cancelled: only the money moves back
            await uow.orders.set_payment(order, payment_status="refunded")
        await uow.commit()
