"""Steady checkout traffic for fault scenarios: a storefront that keeps ordering, and retries a
checkout with the same Idempotency-Key until it is accepted, as a real storefront would."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import httpx

from devtools.harness.shop import FINAL, STOREFRONT, Shop

RETRYABLE = {500, 502, 503, 504, 409}


@dataclass
class Traffic:
    shop: Shop
    sku: str
    rate: float = 8.0  # checkouts per second
    accepted: list[str] = field(default_factory=list)
    gave_up: int = 0
    retries: int = 0
    # Every answer but 202 ("503 application/problem+json") and broken connections ("transport").
    errors: Counter[str] = field(default_factory=Counter)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _inflight: set[asyncio.Task] = field(default_factory=set)

    async def run(self) -> None:
        while not self._stop.is_set():
            task = asyncio.create_task(self._checkout())
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
            await asyncio.sleep(1 / self.rate)

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._inflight)

    async def _checkout(self, patience: float = 120) -> None:
        body = {
            "customer": {"id": "cus_faults", "email": f"{uuid.uuid4().hex[:8]}@example.com"},
            "items": [{"sku": self.sku, "quantity": 1}],
            "payment_method": "pm_card_visa",
        }
        headers = {**STOREFRONT, "Idempotency-Key": uuid.uuid4().hex}
        deadline = time.monotonic() + patience
        while time.monotonic() < deadline:
            try:
                response = await self.shop.orders.post("/v1/orders", json=body, headers=headers)
                if response.status_code == 202:
                    self.accepted.append(response.json()["id"])
                    return
                media_type = response.headers.get("content-type", "").split(";")[0]
                self.errors[f"{response.status_code} {media_type}"] += 1
                if response.status_code not in RETRYABLE:
                    raise AssertionError(
                        f"checkout refused: {response.status_code} {response.text}"
                    )
            except httpx.TransportError as exc:
                self.errors[f"transport {type(exc).__name__}"] += 1
            self.retries += 1
            await asyncio.sleep(0.5)
        self.gave_up += 1


async def all_final(shop: Shop, order_ids: set[str], timeout: float = 240) -> dict[str, dict]:
    """Poll until every order is final; returns them. Survives a flaky API while it recovers."""
    deadline = time.monotonic() + timeout
    final: dict[str, dict] = {}
    while True:
        pending = [order_id for order_id in order_ids if order_id not in final]
        for start in range(0, len(pending), 50):
            batch = pending[start : start + 50]
            try:
                orders = await asyncio.gather(*(shop.order(order_id) for order_id in batch))
            except (AssertionError, httpx.TransportError):
                break  # the API is still recovering
            final.update({order["id"]: order for order in orders if order["status"] in FINAL})
        if len(final) == len(order_ids):
            return final
        if time.monotonic() > deadline:
            return final
        await asyncio.sleep(0.5)
