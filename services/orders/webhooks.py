"""Stripe webhooks: verify the signature, then settle the order only on the provider's word.

A valid signature proves only that the sender knows the webhook secret, not that money moved;
so the event body is used to find which intent and order to look at, and nothing else. The
PaymentIntent is retrieved from the provider and must be the order's own (its
`metadata.order_id`, which only our idempotency-keyed charge writes, and the intent the order
recorded, if any), for the order's amount and currency, in the status the event claims.
Anything else changes nothing, is answered 2xx (so the provider stops retrying), logged with
the event id and counted in `doorbuster_webhook_events_refused_total`.

A webhook and the charge task may both report the same PaymentIntent, in either order and more
than once; `settle_charge` records the first and ignores the rest.
"""

from __future__ import annotations

import logging
from typing import Any

import stripe
from prometheus_client import Counter
from sqlalchemy.engine import RowMapping

from services.orders.billing import changes, settle_charge
from services.orders.payments import ProviderIntent, StripeGateway
from services.orders.repository import OrderNotFound, read_order
from shared.infra.observability import set_correlation_id, tag_order
from shared.messaging.uow import UnitOfWork

log = logging.getLogger(__name__)
# The provider's status for the outcome each event claims: a declined intent goes back to
# `requires_payment_method`, its error recorded.
CLAIMED_STATUS = {
    "payment_intent.succeeded": "succeeded",
    "payment_intent.payment_failed": "requires_payment_method",
}
REFUSED = Counter(
    "doorbuster_webhook_events_refused_total",
    "Signed Stripe payment events not acted on because the provider does not confirm them",
    ["reason"],
)


class InvalidWebhook(ValueError):
    """Missing or wrong `Stripe-Signature`, or not a Stripe event (400)."""


def verify(payload: bytes, signature: str | None, secret: str) -> stripe.Event:
    if not signature:
        raise InvalidWebhook("missing Stripe-Signature header")
    try:
        return stripe.Webhook.construct_event(payload, signature, secret)
    except (stripe.SignatureVerificationError, ValueError) as exc:
        raise InvalidWebhook(str(exc)) from exc


def claimed_ids(event: stripe.Event) -> tuple[str | None, str | None]:
    """The intent and order ids the event names: where to look, not what to believe."""
    claimed: dict[str, Any] = event.data.object.to_dict()
    metadata = claimed.get("metadata")
    intent_id = claimed.get("id")
    order_id = metadata.get("order_id") if isinstance(metadata, dict) else None
    # A forged body may put anything there: only short strings are looked up.
    return _short_text(intent_id, 255), _short_text(order_id, 40)


def _short_text(value: object, limit: int) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= limit else None


def disproof(order: RowMapping, intent: ProviderIntent | None, claimed_status: str) -> str | None:
    """Why the provider's intent does not prove the claim for this order, or None."""
    if intent is None:
        return "unknown_intent"
    if intent.order_id != order["id"]:
        return "other_order"
    if order["payment_intent_id"] not in (None, intent.id):
        return "other_intent"
    if intent.amount != order["total"] or intent.currency != order["currency"]:
        return "amount_mismatch"
    if intent.status != claimed_status:
        return "status_mismatch"
    return None


def _refuse(event: stripe.Event, reason: str, order_id: str | None) -> bool:
    REFUSED.labels(reason).inc()
    log.warning("webhook %s (%s, order %s) refused: %s", event.id, event.type, order_id, reason)
    return False


async def reconcile(uow: UnitOfWork, gateway: StripeGateway, event: stripe.Event) -> bool:
    """Apply a payment event the provider confirms; False when it is not acted on.

    Raises TransientPaymentError when the provider cannot be asked now (the route answers
    503 and the provider delivers the event again later)."""
    if event.type not in CLAIMED_STATUS:
        return False
    intent_id, order_id = claimed_ids(event)
    if not (intent_id and order_id):
        return _refuse(event, "no_order", order_id)
    try:
        order = await read_order(uow, order_id)
    except OrderNotFound:
        return _refuse(event, "unknown_order", order_id)
    intent = await gateway.retrieve(intent_id)
    if reason := disproof(order, intent, CLAIMED_STATUS[event.type]):
        return _refuse(event, reason, order_id)
    assert intent is not None  # disproof refuses a missing intent
    # Whichever settles the charge first (this webhook or the charge task) emits the order's
    # next tasks: under the order's correlation id either way, so one grep follows the order.
    if intent.correlation_id:
        set_correlation_id(intent.correlation_id)
    tag_order(order_id)
    outcome = intent.outcome()
    # Most often the charge task recorded this outcome already: a plain read said so
    # without taking the order's lock.
    if changed := changes(order, outcome):
        await settle_charge(uow, order_id, outcome)
    log.info(
        "webhook %s (%s) confirmed by the provider for order %s%s",
        event.id,
        event.type,
        order_id,
        "" if changed else ", as the charge task had recorded",
    )
    return True
