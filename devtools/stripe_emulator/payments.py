"""PaymentIntents, refunds and events: the Stripe behaviour Doorbuster depends on.

Operations are synchronous and never await: each one runs to completion on the
event loop, so no two can interleave on one PaymentIntent. They validate every
parameter before changing anything, because Stripe leaves state untouched on a 400.
"""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from .errors import ApiError, invalid, missing, no_such
from .forms import to_bool, to_int, to_metadata, to_str
from .objects import (
    API_VERSION,
    DECLINING,
    SUCCEEDING,
    new_intent,
    new_refund,
    payment_method_object,
)
from .state import Collection, Store, new_id

CONFIRMABLE = ("requires_payment_method", "requires_confirmation")
REFUND_REASONS = ("duplicate", "fraudulent", "requested_by_customer")

EventSink = Callable[[dict[str, Any]], None]
# `field:'value'` clauses of Stripe's search query language that the emulator answers.
_CLAUSE = re.compile(r"^(metadata\['(?P<key>[^']+)'\]|(?P<field>[a-z_]+)):'(?P<value>[^']*)'$")
SEARCH_FIELDS = ("status", "currency", "customer")


class Payments:
    """The emulated API surface over a Store; `on_event` receives every Event created;
    `search_lag()` is how many seconds a new intent stays unsearchable."""

    def __init__(
        self, store: Store, on_event: EventSink, search_lag: Callable[[], float] = lambda: 0.0
    ) -> None:
        self.store = store
        self._on_event = on_event
        self._search_lag = search_lag

    def create_intent(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Create a PaymentIntent, confirming it at once when `confirm=true` (how we charge)."""
        amount = to_int(params, "amount", required=True)
        if amount is None or amount < 1:
            raise invalid(
                "Amount must be at least 1 cent.", code="amount_too_small", param="amount"
            )
        currency = _currency(params)
        payment_method = _payment_method(params)
        confirm = to_bool(params, "confirm")
        intent = new_intent(amount, currency, payment_method, params)
        self.store.payment_intents.add(intent)
        return self._confirm(intent, payment_method) if confirm else intent

    def confirm_intent(self, intent_id: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """Confirm an existing intent, optionally with a new payment method."""
        intent = self.get_intent(intent_id)
        payment_method = _payment_method(params) or intent["payment_method"]
        return self._confirm(intent, payment_method)

    def get_intent(self, intent_id: str) -> dict[str, Any]:
        intent = self.store.payment_intents.get(intent_id)
        if intent is None:
            raise no_such("payment_intent", intent_id, "intent", status=404)
        return intent

    def list_intents(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Newest first; `created[gte|gt|lte|lt]` (or `created=<ts>`) narrows by creation."""
        intents = self.store.payment_intents
        ids = _created_filter(intents, params)
        return _list_page(intents, params, "/v1/payment_intents", ids)

    def search_intents(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """`GET /v1/payment_intents/search`: Stripe's search result envelope for a query of
        `field:'value'` clauses joined by AND (`metadata['k']`, status, currency, customer).
        Eventually consistent like Stripe's: intents younger than the search lag are missing.
        A scan, like the lists' filters; the service searches only on a rare path."""
        query = to_str(params, "query", required=True) or ""
        matchers = [_clause(part.strip()) for part in re.split(r"\s+AND\s+", query.strip())]
        limit = _limit(params)
        offset = _page_offset(to_str(params, "page"))
        horizon = time.time() - self._search_lag()
        found = [
            intent
            for intent in reversed(self.store.payment_intents.objects())
            if intent["created"] <= horizon and all(match(intent) for match in matchers)
        ]
        data = found[offset : offset + limit]
        more = offset + limit < len(found)
        return {
            "object": "search_result",
            "url": "/v1/payment_intents/search",
            "has_more": more,
            "data": data,
            "next_page": f"page_{offset + limit}" if more else None,
        }

    def create_refund(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Refund all or part of a succeeded intent; never more than it received."""
        intent = self._refundable_intent(params)
        amount = _refund_amount(intent, params)
        reason = to_str(params, "reason")
        if reason is not None and reason not in REFUND_REASONS:
            raise invalid(
                f"Invalid reason: must be one of {', '.join(REFUND_REASONS)}", param="reason"
            )
        refund = new_refund(intent, amount, reason, to_metadata(params))
        self.store.refunds.add(refund)
        self.store.refunds_by_intent.setdefault(intent["id"], []).append(refund["id"])
        intent["amount_refunded"] += amount
        return refund

    def get_refund(self, refund_id: str) -> dict[str, Any]:
        refund = self.store.refunds.get(refund_id)
        if refund is None:
            raise no_such("refund", refund_id, "id", status=404)
        return refund

    def list_refunds(self, params: Mapping[str, Any]) -> dict[str, Any]:
        intent_id = to_str(params, "payment_intent")
        ids = None if intent_id is None else self.store.refunds_by_intent.get(intent_id, [])
        created = _created_filter(self.store.refunds, params)
        if created is not None:
            ids = created if ids is None else [i for i in ids if i in set(created)]
        return _list_page(self.store.refunds, params, "/v1/refunds", ids)

    def get_event(self, event_id: str) -> dict[str, Any]:
        event = self.store.events.get(event_id)
        if event is None:
            raise no_such("event", event_id, "id", status=404)
        return event

    def list_events(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Events newest first; `type` filters by scanning (lists are the one place we scan)."""
        event_type = to_str(params, "type")
        events = self.store.events
        ids = None if event_type is None else events.ids_where(lambda e: e["type"] == event_type)
        return _list_page(events, params, "/v1/events", ids)

    def _confirm(self, intent: dict[str, Any], payment_method: str | None) -> dict[str, Any]:
        if intent["status"] not in CONFIRMABLE:
            raise _unexpected_state(intent, "confirm")
        if payment_method is None:
            raise invalid(
                "You cannot confirm this PaymentIntent because it's missing a payment method.",
                code="payment_intent_unexpected_state",
                param="payment_method",
            )
        if payment_method in DECLINING:
            raise self._decline(intent, payment_method)
        self._succeed(intent, payment_method)
        return intent

    def _succeed(self, intent: dict[str, Any], payment_method: str) -> None:
        charge = new_id("ch")
        self.store.intent_by_charge[charge] = intent["id"]
        intent.update(
            status="succeeded",
            amount_received=intent["amount"],
            latest_charge=charge,
            payment_method=payment_method,
            last_payment_error=None,
        )
        self._emit("payment_intent.succeeded", intent)

    def _decline(self, intent: dict[str, Any], payment_method: str) -> ApiError:
        """Fail the intent as Stripe does: back to requires_payment_method, error recorded."""
        code, decline_code, message = DECLINING[payment_method]
        charge = new_id("ch")
        details = {
            "type": "card_error",
            "code": code,
            "decline_code": decline_code,
            "message": message,
            "charge": charge,
            "payment_method": payment_method_object(payment_method),
        }
        intent.update(
            status="requires_payment_method",
            payment_method=None,
            latest_charge=charge,
            last_payment_error=details,
        )
        self._emit("payment_intent.payment_failed", intent)
        extra = {k: v for k, v in details.items() if k not in ("type", "code", "message")}
        return ApiError(
            402, "card_error", message, code=code, payment_intent=copy.deepcopy(intent), **extra
        )

    def _refundable_intent(self, params: Mapping[str, Any]) -> dict[str, Any]:
        intent_id = to_str(params, "payment_intent")
        charge = to_str(params, "charge")
        if intent_id is None and charge is None:
            raise missing("payment_intent")
        if intent_id is None:
            intent_id = self.store.intent_by_charge.get(charge or "")
            if intent_id is None:
                raise no_such("charge", charge or "", "charge")
        intent = self.store.payment_intents.get(intent_id)
        if intent is None:
            raise no_such("payment_intent", intent_id, "payment_intent")
        if intent["status"] != "succeeded":
            raise invalid(
                f"This PaymentIntent ({intent_id}) does not have a successful charge to refund.",
                code="payment_intent_unexpected_state",
                param="payment_intent",
            )
        return intent

    def _emit(self, event_type: str, intent: dict[str, Any]) -> None:
        """Record an Event with a snapshot of the intent (later changes must not leak in)."""
        event = {
            "id": new_id("evt"),
            "object": "event",
            "api_version": API_VERSION,
            "created": int(time.time()),
            "data": {"object": copy.deepcopy(intent)},
            "livemode": False,
            "pending_webhooks": 0,
            "request": {"id": None, "idempotency_key": None},
            "type": event_type,
        }
        self.store.events.add(event)
        self._on_event(event)


def _currency(params: Mapping[str, Any]) -> str:
    currency = (to_str(params, "currency", required=True) or "").lower()
    if not re.fullmatch(r"[a-z]{3}", currency):
        raise invalid(f"Invalid currency: {currency}.", param="currency")
    return currency


def _payment_method(params: Mapping[str, Any]) -> str | None:
    """Only Stripe's test payment methods exist here; any other id is `resource_missing`."""
    payment_method = to_str(params, "payment_method")
    if payment_method is not None and payment_method not in SUCCEEDING | DECLINING.keys():
        raise no_such("PaymentMethod", payment_method, "payment_method")
    return payment_method


def _refund_amount(intent: dict[str, Any], params: Mapping[str, Any]) -> int:
    """The amount to refund: all that is left by default, never more than that."""
    remaining = intent["amount_received"] - intent["amount_refunded"]
    amount = to_int(params, "amount")
    if amount is not None and amount < 1:
        raise invalid("Amount must be at least 1 cent.", code="amount_too_small", param="amount")
    if remaining <= 0:
        raise invalid(
            f"Charge {intent['latest_charge']} has already been refunded.",
            code="charge_already_refunded",
        )
    if amount is not None and amount > remaining:
        raise invalid(
            f"Refund amount ({amount}) is greater than unrefunded amount on charge ({remaining})",
            code="charge_already_refunded",
            param="amount",
        )
    return remaining if amount is None else amount


def _unexpected_state(intent: dict[str, Any], action: str) -> ApiError:
    return ApiError(
        400,
        "invalid_request_error",
        f"You cannot {action} this PaymentIntent because it has a status of {intent['status']}.",
        code="payment_intent_unexpected_state",
        payment_intent=copy.deepcopy(intent),
    )


def _clause(text: str) -> Callable[[dict[str, Any]], bool]:
    """One `field:'value'` clause as a predicate; anything else is Stripe's 400."""
    found = _CLAUSE.match(text)
    if found is None or (found["field"] and found["field"] not in SEARCH_FIELDS):
        raise invalid(
            f"The emulator cannot search for {text!r}: use field:'value' clauses "
            f"(metadata['key'], {', '.join(SEARCH_FIELDS)}) joined by AND.",
            param="query",
        )
    key, field, value = found["key"], found["field"], found["value"]
    if key is not None:
        return lambda intent: (intent.get("metadata") or {}).get(key) == value
    return lambda intent: intent.get(field) == value


def _page_offset(page: str | None) -> int:
    if page is None:
        return 0
    if not re.fullmatch(r"page_\d+", page):
        raise invalid(f"Invalid page: {page}", param="page")
    return int(page.removeprefix("page_"))


def _created_filter(collection: Collection, params: Mapping[str, Any]) -> list[str] | None:
    """Ids (creation order) whose `created` is within `created[gte|gt|lte|lt]`, or equals
    `created`; None when the request has no such filter."""
    raw = params.get("created")
    if raw in (None, ""):
        return None
    bounds = raw if isinstance(raw, dict) else {"eq": raw}
    checks = {
        "gte": lambda c, t: c >= t,
        "gt": lambda c, t: c > t,
        "lte": lambda c, t: c <= t,
        "lt": lambda c, t: c < t,
        "eq": lambda c, t: c == t,
    }
    tests = []
    for op, value in bounds.items():
        if op not in checks:
            raise invalid(f"Invalid created filter: {op}", param="created")
        tests.append((checks[op], to_int({"v": value}, "v", required=True)))
    return collection.ids_where(lambda obj: all(check(obj["created"], t) for check, t in tests))


def _limit(params: Mapping[str, Any]) -> int:
    limit = to_int(params, "limit")
    limit = 10 if limit is None else limit
    if not 1 <= limit <= 100:
        raise invalid("This value must be between 1 and 100.", param="limit")
    return limit


def _list_page(
    collection: Collection, params: Mapping[str, Any], url: str, ids: list[str] | None = None
) -> dict[str, Any]:
    """Stripe's list envelope; `url` has no query so the SDK's next-page merge stays clean."""
    limit = _limit(params)
    data, has_more = collection.page(
        limit, to_str(params, "starting_after"), to_str(params, "ending_before"), ids
    )
    return {"object": "list", "data": data, "has_more": has_more, "url": url}
