"""Stripe webhooks: verify the signature, then settle the order only on the provider's word.

A valid signature proves only that the sender knows the webhook secret, not that money moved;
so the event body is used to find which intent and order to look at, and nothing else. The
PaymentIntent is retrieved from the provider and must be the order's own (its
`metadata.order_id`, which only our idempotency-keyed charge writes, and the intent the order
recorded, if any), for the order's amount and currency, in the status the event claims.
Anything else changes nothing, is answered 2xx (so the provider stops retrying), logged with
the event id and counted in `doorbuster_webhook_events_refused_total`.

A webhook and the charge task may both report the same PaymentIntent, in either order and more
than once; `settle_charge` records the first and ignores the rest. An event claiming the very
outcome the order already records for that intent changes nothing, true or forged, and is
acknowledged without asking the provider.

The provider sends the event as soon as it has charged, so it most often arrives while the
charge task is still recording the same outcome. An event for an order whose charge is in flight
(`reserved`) therefore waits `grace` seconds (no CPU: the request just sleeps) and reads the
order again: if the task recorded that outcome meanwhile, nothing is asked; otherwise (the task
died, or is slow) the provider is asked and the order settled as before. What is proven and
settled is the same either way; only the provider round trip is spared (about 2 ms of CPU in
this process and the provider's own, per order: docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import orjson
import stripe
from prometheus_client import Counter

from services.orders.billing import MONEY_RECORDED, changes, settle_charge
from services.orders.payments import ProviderIntent, StripeGateway
from services.orders.repository import Order, OrderNotFound, OrdersWork
from shared.infra.observability import set_correlation_id, tag_order

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


@dataclass(frozen=True)
class PaymentEvent:
    """A signed Stripe event: its id, its type and the object it is about (a plain dict)."""

    id: str
    type: str
    object: dict[str, Any]


def verify(payload: bytes, signature: str | None, secret: str) -> PaymentEvent:
    """Check the signature (and its age: the SDK's five-minute tolerance), then parse.

    The SDK's `construct_event` builds a `StripeObject` tree of the whole body (about 160 us
    here); what is used of it is three fields, read from orjson's dict (FACTS.md: 6.5 us)."""
    if not signature:
        raise InvalidWebhook("missing Stripe-Signature header")
    try:
        stripe.WebhookSignature.verify_header(
            payload, signature, secret, tolerance=stripe.Webhook.DEFAULT_TOLERANCE
        )
        body = orjson.loads(payload)
    except (stripe.SignatureVerificationError, ValueError) as exc:
        raise InvalidWebhook(str(exc)) from exc
    if not isinstance(body, dict) or not all(
        isinstance(body.get(field), str) for field in ("id", "type")
    ):
        raise InvalidWebhook("not a Stripe event")
    data = body.get("data")
    claimed = data.get("object") if isinstance(data, dict) else None
    return PaymentEvent(body["id"], body["type"], claimed if isinstance(claimed, dict) else {})


def claimed_ids(event: PaymentEvent) -> tuple[str | None, str | None]:
    """The intent and order ids the event names: where to look, not what to believe."""
    claimed = event.object
    metadata = claimed.get("metadata")
    intent_id = claimed.get("id")
    order_id = metadata.get("order_id") if isinstance(metadata, dict) else None
    # A forged body may put anything there: only short strings are looked up.
    return _short_text(intent_id, 255), _short_text(order_id, 40)


def _short_text(value: object, limit: int) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= limit else None


def disproof(order: Order, intent: ProviderIntent | None, claimed_status: str) -> str | None:
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


def claimed_correlation_id(event: PaymentEvent) -> str | None:
    metadata = event.object.get("metadata")
    value = metadata.get("correlation_id") if isinstance(metadata, dict) else None
    return _short_text(value, 64)


def _follow(order_id: str, correlation_id: str | None) -> None:
    """File what follows under the order's correlation id (and tag it with the order)."""
    if correlation_id:
        set_correlation_id(correlation_id)
    tag_order(order_id)


def already_recorded(order: Order, intent_id: str, event_type: str) -> bool:
    """Whether the order already holds the outcome the event claims, for this intent."""
    if order["payment_intent_id"] != intent_id:
        return False
    if event_type == "payment_intent.succeeded":
        return order["payment_status"] in MONEY_RECORDED
    return order["payment_status"] == "failed"


def _refuse(event: PaymentEvent, reason: str, order_id: str | None) -> bool:
    REFUSED.labels(reason).inc()
    log.warning("webhook %s (%s, order %s) refused: %s", event.id, event.type, order_id, reason)
    return False


async def reconcile(
    uow: OrdersWork, gateway: StripeGateway, event: PaymentEvent, grace: float = 0.0
) -> bool:
    """Apply a payment event the provider confirms; False when it is not acted on.

    Raises TransientPaymentError when the provider cannot be asked now (the route answers
    503 and the provider delivers the event again later)."""
    if event.type not in CLAIMED_STATUS:
        return False
    intent_id, order_id = claimed_ids(event)
    if not (intent_id and order_id):
        return _refuse(event, "no_order", order_id)
    try:
        order = await uow.orders.read(order_id)
    except OrderNotFound:
        return _refuse(event, "unknown_order", order_id)
    in_flight = order["status"] == "reserved"
    if grace and in_flight and not already_recorded(order, intent_id, event.type):
        # Its charge is in flight: give the charge task the moment it needs to record.
        await asyncio.sleep(grace)
        order = await uow.orders.read(order_id)
    if already_recorded(order, intent_id, event.type):
        # Most often the charge task recorded this very outcome first: whether the event is
        # true or not, it changes nothing, so the provider is not asked (a round trip). Its
        # line goes under the correlation id the body names: unproven, but it only files a
        # log line, and the order's id is on it too.
        _follow(order_id, claimed_correlation_id(event))
        log.info(
            "webhook %s (%s) for order %s: the outcome it reports is recorded",
            event.id,
            event.type,
            order_id,
        )
        return True
    intent = await gateway.retrieve(intent_id)
    if reason := disproof(order, intent, CLAIMED_STATUS[event.type]):
        return _refuse(event, reason, order_id)
    assert intent is not None  # disproof refuses a missing intent
    # Whichever settles the charge first (this webhook or the charge task) emits the order's
    # next tasks: under the order's correlation id either way, so one grep follows the order.
    _follow(order_id, intent.correlation_id)
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
