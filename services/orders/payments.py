"""The payment provider, through the official `stripe` SDK (async, over HTTPX).

One order is charged at most once whatever is retried or redelivered: the PaymentIntent is
created with an idempotency key derived from the order id, so a repeat of the call, even after
a timeout that hid a success, gets Stripe's first answer back instead of a second charge.
"""

from __future__ import annotations

from dataclasses import dataclass

import stripe

from shared.infra.observability import current_correlation_id
from shared.infra.settings import Settings


class TransientPaymentError(Exception):
    """The provider could not answer now (5xx, 429, timeout): retry with backoff."""


@dataclass(frozen=True)
class ChargeOutcome:
    succeeded: bool
    intent_id: str | None
    reason: str | None = None


@dataclass(frozen=True)
class ProviderIntent:
    """A PaymentIntent as the provider holds it: what a webhook's claim is checked against."""

    id: str
    status: str
    amount: int
    currency: str
    order_id: str | None
    correlation_id: str | None
    error_code: str | None

    def outcome(self) -> ChargeOutcome:
        if self.status == "succeeded":
            return ChargeOutcome(True, self.id)
        return ChargeOutcome(False, self.id, self.error_code or "card_declined")


def charge_idempotency_key(order_id: str) -> str:
    return f"doorbuster-charge-{order_id}"


def refund_idempotency_key(order_id: str) -> str:
    return f"doorbuster-refund-{order_id}"


class StripeGateway:
    def __init__(self, settings: Settings):
        self._client = stripe.StripeClient(
            settings.stripe_api_key,
            base_addresses={"api": settings.stripe_api_base},
            http_client=stripe.HTTPXClient(timeout=settings.stripe_timeout_seconds),
            max_network_retries=0,  # Celery owns retries, with backoff and a dead letter.
        )

    async def charge(
        self, order_id: str, amount: int, currency: str, payment_method: str
    ) -> ChargeOutcome:
        params: stripe.params.PaymentIntentCreateParams = {
            "amount": amount,
            "currency": currency,
            "payment_method": payment_method,
            "confirm": True,
            "payment_method_types": ["card"],
            # The webhook for this intent continues the order's trace (services/orders/webhooks).
            "metadata": {"order_id": order_id, **_correlation()},
            "description": f"Doorbuster order {order_id}",
        }
        try:
            intent = await self._client.v1.payment_intents.create_async(
                params, {"idempotency_key": charge_idempotency_key(order_id)}
            )
        except stripe.CardError as exc:
            intent_id = (
                exc.error.payment_intent.id if exc.error and exc.error.payment_intent else None
            )
            return ChargeOutcome(False, intent_id, exc.code or "card_declined")
        except stripe.InvalidRequestError as exc:
            if exc.param == "payment_method":
                return ChargeOutcome(False, None, "invalid_payment_method")
            raise
        except (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError) as exc:
            raise TransientPaymentError(str(exc)) from exc
        if intent.status == "succeeded":
            return ChargeOutcome(True, intent.id)
        return ChargeOutcome(False, intent.id, f"intent_{intent.status}")

    async def retrieve(self, intent_id: str) -> ProviderIntent | None:
        """The provider's own copy of an intent; None when it has no such intent."""
        try:
            intent = await self._client.v1.payment_intents.retrieve_async(intent_id)
        except stripe.InvalidRequestError as exc:
            if exc.http_status == 404:
                return None
            raise
        except (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError) as exc:
            raise TransientPaymentError(str(exc)) from exc
        metadata = intent.metadata.to_dict() if intent.metadata else {}
        error = intent.last_payment_error
        return ProviderIntent(
            id=intent.id,
            status=intent.status,
            amount=intent.amount,
            currency=intent.currency,
            order_id=metadata.get("order_id"),
            correlation_id=metadata.get("correlation_id"),
            error_code=error.code if error else None,
        )

    async def refund(self, order_id: str, intent_id: str) -> str:
        try:
            refund = await self._client.v1.refunds.create_async(
                {"payment_intent": intent_id, "metadata": {"order_id": order_id}},
                {"idempotency_key": refund_idempotency_key(order_id)},
            )
        except (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError) as exc:
            raise TransientPaymentError(str(exc)) from exc
        return refund.id


def _correlation() -> dict[str, str]:
    correlation_id = current_correlation_id()
    return {"correlation_id": correlation_id} if correlation_id else {}
