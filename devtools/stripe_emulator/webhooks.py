"""Webhook delivery, signed exactly as Stripe signs, so receivers run their real checks.

`Stripe-Signature: t=<unix time>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>` is
what `stripe.Webhook.construct_event` verifies (with a 5-minute tolerance), so each
attempt is signed afresh. Delivery runs in background tasks: Stripe answers the API
call without waiting for the webhook, and receivers must cope with events that
arrive late, twice (a retry after a lost 2xx) or never (after the last attempt).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson

from .config import EmulatorConfig

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
FIRST_BACKOFF_SECONDS = 0.5
POST_TIMEOUT_SECONDS = 5.0


def signature_header(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """The `Stripe-Signature` header value for a raw payload."""
    signed_at = int(time.time()) if timestamp is None else timestamp
    message = f"{signed_at}.".encode() + payload
    digest = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()
    return f"t={signed_at},v1={digest}"


class WebhookSender:
    """Posts events to the configured URL in the background, retrying with backoff."""

    def __init__(self, settings: Callable[[], EmulatorConfig]) -> None:
        self._settings = settings
        self._client: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.delivered = 0
        self.abandoned = 0

    def send(self, event: dict[str, Any]) -> None:
        """Schedule delivery of `event` if a webhook URL is set; returns at once."""
        config = self._settings()
        if not config.webhook_url:
            return
        payload = orjson.dumps(event)
        delivery = self._deliver(config.webhook_url, config.webhook_secret, payload, event["id"])
        task = asyncio.get_running_loop().create_task(delivery)
        self._tasks.add(task)  # a task nobody references can be garbage-collected mid-flight
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        """Stop pending deliveries and close connections (on app shutdown)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _deliver(self, url: str, secret: str, payload: bytes, event_id: str) -> None:
        for attempt in range(MAX_ATTEMPTS):
            if attempt:
                await asyncio.sleep(FIRST_BACKOFF_SECONDS * 2 ** (attempt - 1))
            if await self._post(url, secret, payload):
                self.delivered += 1
                return
        self.abandoned += 1
        log.warning("webhook %s to %s abandoned after %d attempts", event_id, url, MAX_ATTEMPTS)

    async def _post(self, url: str, secret: str, payload: bytes) -> bool:
        """One attempt; only a 2xx counts as delivered, as with Stripe."""
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Stripe-Signature": signature_header(payload, secret),
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        }
        try:
            response = await self._http().post(url, content=payload, headers=headers)
        except httpx.HTTPError as exc:
            log.info("webhook POST to %s failed: %r", url, exc)
            return False
        return 200 <= response.status_code < 300

    def _http(self) -> httpx.AsyncClient:
        """Made on first use, inside the running loop (no I/O objects at import or init)."""
        if self._client is None:
            # Stripe has no cap on events in flight; a receiver may hold each for a moment
            # (the orders API waits for its charge task: services/orders/webhooks.py).
            self._client = httpx.AsyncClient(
                timeout=POST_TIMEOUT_SECONDS,
                limits=httpx.Limits(max_connections=1000, max_keepalive_connections=200),
            )
        return self._client
