"""Stripe webhooks: verify the signature, then reconcile the order like the charge task would.

A webhook and the charge task may both report the same PaymentIntent, in either order and more
than once; `settle_charge` records the first and ignores the rest.
"""

from __future__ import annotations

import logging

import stripe

from services.orders.billing import changes, settle_charge
from services.orders.payments import ChargeOutcome
from services.orders.repository import OrderNotFound, read_order
from shared.observability import set_correlation_id
from shared.uow import UnitOfWork

log = logging.getLogger(__name__)
RECONCILED = {"payment_intent.succeeded", "payment_intent.payment_failed"}


class InvalidWebhook(ValueError):
    """Missing or wrong `Stripe-Signature`, or not a Stripe event (400)."""


def verify(payload: bytes, signature: str | None, secret: str) -> stripe.Event:
    if not signature:
        raise InvalidWebhook("missing Stripe-Signature header")
    try:
        return stripe.Webhook.construct_event(payload, signature, secret)
    except (stripe.SignatureVerificationError, ValueError) as exc:
        raise InvalidWebhook(str(exc)) from exc


def outcome_of(event: stripe.Event) -> tuple[dict[str, str], ChargeOutcome]:
    """The intent's metadata (order and correlation ids) and the charge outcome it reports."""
    intent = event.data.object.to_dict()
    succeeded = event.type == "payment_intent.succeeded"
    error = intent.get("last_payment_error") or {}
    reason = None if succeeded else (error.get("code") or "card_declined")
    return intent.get("metadata") or {}, ChargeOutcome(succeeded, intent.get("id"), reason)


async def reconcile(uow: UnitOfWork, event: stripe.Event) -> bool:
    """Apply a payment event to its order; False when the event is not one we act on."""
    if event.type not in RECONCILED:
        return False
    metadata, outcome = outcome_of(event)
    # Whichever settles the charge first (this webhook or the charge task) emits the order's
    # next tasks: under the order's correlation id either way, so one grep follows the order.
    if correlation_id := metadata.get("correlation_id"):
        set_correlation_id(correlation_id)
    order_id = metadata.get("order_id")
    if not order_id:
        log.info("webhook %s carries no order id; ignored", event.id)
        return False
    try:
        # Most often the charge task recorded this outcome already: a plain read (one round
        # trip) says so without taking the order's lock.
        if changes(await read_order(uow, order_id), outcome):
            await settle_charge(uow, order_id, outcome)
    except OrderNotFound:
        log.warning("webhook %s names unknown order %s; ignored", event.id, order_id)
        return False
    return True
