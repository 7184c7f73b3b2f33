"""The payment provider, through the official `stripe` SDK (async, over its aiohttp transport:
about a sixth of HTTPX's client CPU per call here; `python -m bench.stripe_sdk`).

One order is charged at most once whatever is retried or redelivered: the PaymentIntent is
created with an idempotency key derived from the order id, so a repeat of the call, even after
a timeout that hid a success, gets Stripe's first answer back instead of a second charge.
Stripe may forget a key once it is 24 hours old: a charge for an order older than `key_trust`
first looks for the order's intents (`find_intents`, billing.py), and the reconciliation lists
them all (`list_intents`, reconcile.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import stripe

from shared.infra.observability import current_correlation_id
from shared.infra.settings import Settings


class TransientPaymentError(Exception):
    """The provider could not answer now (5xx, 429, timeout): retry with backoff."""


# What "the provider could not answer now" looks like: the SDK's own errors, and a timeout or a
# broken connection while the body is read (the SDK's aiohttp transport maps only the request).
TRANSIENT = (
    stripe.APIConnectionError,
    stripe.RateLimitError,
    stripe.APIError,
    TimeoutError,
    aiohttp.ClientError,
)


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
    amount_received: int = 0
    created: int = 0  # Unix seconds, as Stripe gives it

    def outcome(self) -> ChargeOutcome:
        if self.status == "succeeded":
            return ChargeOutcome(True, self.id)
        return ChargeOutcome(False, self.id, self.error_code or "card_declined")


def charge_idempotency_key(order_id: str) -> str:
    return f"doorbuster-charge-{order_id}"


def refund_idempotency_key(order_id: str) -> str:
    return f"doorbuster-refund-{order_id}"


def duplicate_refund_idempotency_key(intent_id: str) -> str:
    """A second charge of an order is refunded per intent: the order's own refund key
    belongs to the charge the order keeps (or gave back)."""
    return f"doorbuster-refund-duplicate-{intent_id}"


class StripeGateway:
    # How long a charge relies on the provider remembering its idempotency key.
    key_trust: timedelta

    def __init__(self, settings: Settings):
        self.key_trust = timedelta(seconds=settings.stripe_idempotency_trust_seconds)
        # One aiohttp session per gateway, opened on the first call inside the running loop
        # (the API's, or the pool's worker loop) and closed by `aclose`.
        self._http = stripe.AIOHTTPClient(
            timeout=aiohttp.ClientTimeout(total=settings.stripe_timeout_seconds)
        )
        self._client = stripe.StripeClient(
            settings.stripe_api_key,
            base_addresses={"api": settings.stripe_api_base},
            http_client=self._http,
            max_network_retries=0,  # Celery owns retries, with backoff and a dead letter.
        )

    async def aclose(self) -> None:
        """Close the HTTP session (on the loop that used it)."""
        await self._http.close_async()

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
        except TRANSIENT as exc:
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
        except TRANSIENT as exc:
            raise TransientPaymentError(str(exc)) from exc
        return _provider_intent(intent.to_dict())

    async def find_intents(self, order_id: str) -> list[ProviderIntent]:
        """Every intent the provider holds for an order (by `metadata.order_id`), as it is now.

        The Search API is eventually consistent (an intent may take up to a minute, during
        outages an hour, to be found) and rate-limited, so only a charge whose idempotency key
        may be forgotten asks it: an intent that old is long searchable, and a younger one
        was made under a key the provider still replays. Each hit is retrieved, because the
        search index may hold an older status."""
        query = f"metadata['order_id']:'{order_id}'"
        try:
            page = await self._client.v1.payment_intents.search_async({"query": query})
            ids = [intent.id async for intent in page.auto_paging_iter()]
        except TRANSIENT as exc:
            raise TransientPaymentError(str(exc)) from exc
        found = [await self.retrieve(intent_id) for intent_id in ids]
        return [intent for intent in found if intent is not None]

    async def confirm(self, order_id: str, intent_id: str, payment_method: str) -> ChargeOutcome:
        """Confirm an intent created earlier and never confirmed (found by `find_intents`)."""
        try:
            intent = await self._client.v1.payment_intents.confirm_async(
                intent_id,
                {"payment_method": payment_method},
                {"idempotency_key": f"doorbuster-confirm-{intent_id}"},
            )
        except stripe.CardError as exc:
            return ChargeOutcome(False, intent_id, exc.code or "card_declined")
        except TRANSIENT as exc:
            raise TransientPaymentError(str(exc)) from exc
        if intent.status == "succeeded":
            return ChargeOutcome(True, intent.id)
        return ChargeOutcome(False, intent.id, f"intent_{intent.status}")

    async def list_intents(self, since: datetime) -> list[ProviderIntent]:
        """Every intent created since `since` (the List API: strongly consistent, paged)."""
        params: Any = {"limit": 100, "created": {"gte": int(since.timestamp())}}
        try:
            page = await self._client.v1.payment_intents.list_async(params)
            return [_provider_intent(i.to_dict()) async for i in page.auto_paging_iter()]
        except TRANSIENT as exc:
            raise TransientPaymentError(str(exc)) from exc

    async def refunded_amounts(self, since: datetime) -> dict[str, int]:
        """Per intent, what its refunds created since `since` gave back (a refund is always
        younger than its intent, so the intents since `since` are all covered)."""
        params: Any = {"limit": 100, "created": {"gte": int(since.timestamp())}}
        refunded: dict[str, int] = {}
        try:
            page = await self._client.v1.refunds.list_async(params)
            async for refund in page.auto_paging_iter():
                if refund.status in ("succeeded", "pending") and refund.payment_intent:
                    intent_id = str(refund.payment_intent)
                    refunded[intent_id] = refunded.get(intent_id, 0) + refund.amount
        except TRANSIENT as exc:
            raise TransientPaymentError(str(exc)) from exc
        return refunded

    async def refund(self, order_id: str, intent_id: str, duplicate: bool = False) -> str:
        """Refund an intent of the order: the order's charge (one key per order), or, with
        `duplicate`, a second charge of it (one key per intent, reason `duplicate`)."""
        params: Any = {"payment_intent": intent_id, "metadata": {"order_id": order_id}}
        key = refund_idempotency_key(order_id)
        if duplicate:
            params["reason"] = "duplicate"
            key = duplicate_refund_idempotency_key(intent_id)
        try:
            refund = await self._client.v1.refunds.create_async(params, {"idempotency_key": key})
        except TRANSIENT as exc:
            raise TransientPaymentError(str(exc)) from exc
        return refund.id


def _provider_intent(data: Mapping[str, Any]) -> ProviderIntent:
    metadata = data.get("metadata") or {}
    error = data.get("last_payment_error") or {}
    return ProviderIntent(
        id=data["id"],
        status=data["status"],
        amount=data["amount"],
        currency=data["currency"],
        order_id=metadata.get("order_id"),
        correlation_id=metadata.get("correlation_id"),
        error_code=error.get("code"),
        amount_received=data.get("amount_received") or 0,
        created=data.get("created") or 0,
    )


def _correlation() -> dict[str, str]:
    correlation_id = current_correlation_id()
    return {"correlation_id": correlation_id} if correlation_id else {}
