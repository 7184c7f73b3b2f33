"""Drive the running Stripe emulator: fault injection and what it has recorded."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import time
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
        configure(
            stack,
            failure_rate=0.0,
            timeout_rate=0.0,
            timeout_hides_rate=0.5,
            latency_ms=0.0,
            faults_only_on_writes=False,
        )


@contextlib.contextmanager
def webhooks_held(stack: Stack) -> Iterator[None]:
    """The provider records its events but delivers none while the block runs (a webhook that
    comes late); `resend` delivers a recorded one afterwards."""
    webhook_url = httpx.get(f"{stack.stripe_url}/_emulator/config", timeout=10).json()[
        "webhook_url"
    ]
    configure(stack, webhook_url="")
    try:
        yield
    finally:
        configure(stack, webhook_url=webhook_url)


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


async def wait_succeeded_charge(
    stack: Stack, order_id: str, timeout: float = 90
) -> stripe.PaymentIntent:
    """The order's one succeeded intent, once the provider holds it (whatever our side knows)."""
    deadline = time.monotonic() + timeout
    while not (charges := await asyncio.to_thread(succeeded_charges, stack, order_id)):
        if time.monotonic() > deadline:
            raise AssertionError(f"order {order_id}: no succeeded intent after {timeout}s")
        await asyncio.sleep(0.2)
    [charge] = charges
    return charge


def refunds_of(stack: Stack, intent_id: str) -> list[stripe.Refund]:
    return list(
        client(stack)
        .v1.refunds.list({"payment_intent": intent_id, "limit": 100})
        .auto_paging_iter()
    )


DEV_WEBHOOK_SECRET = "whsec_doorbuster_dev"


def signed(payload: bytes, secret: str = DEV_WEBHOOK_SECRET) -> dict[str, str]:
    """Headers of a webhook signed as Stripe signs (`t=<time>,v1=<HMAC-SHA256>`): what anyone
    who knows the secret can send, which is why the orders service asks the provider."""
    timestamp = int(time.time())
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256)
    return {
        "Content-Type": "application/json",
        "Stripe-Signature": f"t={timestamp},v1={digest.hexdigest()}",
    }


def resend(stack: Stack, event_id: str, times: int = 1) -> None:
    """The emulator delivers a recorded event again (duplicates, out of order)."""
    response = httpx.post(
        f"{stack.stripe_url}/_emulator/events/{event_id}/resend", json={"times": times}, timeout=10
    )
    assert response.status_code == 200, response.text


def events_of(stack: Stack, intent_id: str) -> list[stripe.Event]:
    """The provider's events about one intent, oldest first."""
    events = client(stack).v1.events.list({"limit": 100}).auto_paging_iter()
    return [event for event in reversed(list(events)) if event.data.object.id == intent_id]
