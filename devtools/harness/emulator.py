"""Drive the running Stripe emulator: fault injection and what it has recorded."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import httpx
import stripe

from devtools.harness.stack import Stack


def configure(stack: Stack, **settings: Any) -> dict[str, Any]:
    response = httpx.post(f"{stack.stripe_url}/_emulator/config", json=settings, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


@contextlib.contextmanager
def faults(stack: Stack, **settings: Any) -> Iterator[None]:
    """Inject faults for the duration of a block, then go back to a healthy provider."""
    configure(stack, **settings)
    try:
        yield
    finally:
        configure(stack, failure_rate=0.0, timeout_rate=0.0, latency_ms=0.0)


def client(stack: Stack) -> stripe.StripeClient:
    return stripe.StripeClient(
        "sk_test_doorbuster",
        base_addresses={"api": stack.stripe_url},
        http_client=stripe.HTTPXClient(allow_sync_methods=True),
        max_network_retries=0,
    )


def intents_of(stack: Stack, order_id: str) -> list[stripe.PaymentIntent]:
    intents = client(stack).v1.payment_intents.list({"limit": 100})
    return [
        pi for pi in intents.auto_paging_iter() if pi.metadata.to_dict().get("order_id") == order_id
    ]


def succeeded_charges(stack: Stack, order_id: str) -> list[stripe.PaymentIntent]:
    return [pi for pi in intents_of(stack, order_id) if pi.status == "succeeded"]


def refunds_of(stack: Stack, intent_id: str) -> list[stripe.Refund]:
    return list(
        client(stack)
        .v1.refunds.list({"payment_intent": intent_id, "limit": 100})
        .auto_paging_iter()
    )
