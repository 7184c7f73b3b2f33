"""Stripe object shapes and the test payment methods the emulator knows.

Kept apart from the operations so the field lists (long, boring, and what the SDK
deserialises) do not bury the behaviour in `payments.py`.
"""

from __future__ import annotations

import random
import string
import time
from collections.abc import Mapping
from typing import Any

from .errors import invalid
from .forms import to_metadata, to_str
from .state import new_id

API_VERSION = "2026-10-28.endive"  # what stripe-python 16.1.0 pins (stripe._api_version)

SUCCEEDING = {
    "pm_card_visa": "visa",
    "pm_card_visa_debit": "visa",
    "pm_card_mastercard": "mastercard",
    "pm_card_amex": "amex",
}
DECLINING = {  # test payment method -> (code, decline_code, message)
    "pm_card_visa_chargeDeclined": ("card_declined", "generic_decline", "Your card was declined."),
    "pm_card_chargeDeclined": ("card_declined", "generic_decline", "Your card was declined."),
    "pm_card_chargeDeclinedInsufficientFunds": (
        "card_declined",
        "insufficient_funds",
        "Your card has insufficient funds.",
    ),
    "pm_card_chargeDeclinedExpiredCard": ("expired_card", "expired_card", "Your card has expired."),
}


def payment_method_object(payment_method: str) -> dict[str, Any]:
    brand = SUCCEEDING.get(payment_method, "visa")
    return {
        "id": payment_method,
        "object": "payment_method",
        "type": "card",
        "card": {"brand": brand},
    }


def new_intent(
    amount: int, currency: str, payment_method: str | None, params: Mapping[str, Any]
) -> dict[str, Any]:
    intent_id = new_id("pi")
    types = params.get("payment_method_types") or ["card"]
    if not isinstance(types, list):
        raise invalid("Invalid array", param="payment_method_types")
    secret = "".join(random.choices(string.ascii_letters + string.digits, k=24))
    return {
        "id": intent_id,
        "object": "payment_intent",
        "amount": amount,
        "amount_capturable": 0,
        "amount_received": 0,
        "amount_refunded": 0,
        "automatic_payment_methods": None,
        "canceled_at": None,
        "cancellation_reason": None,
        "capture_method": "automatic",
        "client_secret": f"{intent_id}_secret_{secret}",
        "confirmation_method": "automatic",
        "created": int(time.time()),
        "currency": currency,
        "customer": to_str(params, "customer"),
        "description": to_str(params, "description"),
        "last_payment_error": None,
        "latest_charge": None,
        "livemode": False,
        "metadata": to_metadata(params),
        "next_action": None,
        "payment_method": payment_method,
        "payment_method_types": types,
        "receipt_email": to_str(params, "receipt_email"),
        "status": "requires_confirmation" if payment_method else "requires_payment_method",
    }


def new_refund(
    intent: dict[str, Any], amount: int, reason: str | None, metadata: dict[str, str]
) -> dict[str, Any]:
    return {
        "id": new_id("re"),
        "object": "refund",
        "amount": amount,
        "balance_transaction": None,
        "charge": intent["latest_charge"],
        "created": int(time.time()),
        "currency": intent["currency"],
        "metadata": metadata,
        "payment_intent": intent["id"],
        "reason": reason,
        "status": "succeeded",
    }
