"""A storefront's view of the running stack: HTTP clients and waits, as a real client would."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx

from devtools.harness.stack import Stack

STOREFRONT = {"Authorization": "Bearer dev-storefront"}
ADMIN = {"Authorization": "Bearer dev-admin"}
FINAL = {"paid", "rejected", "payment_failed", "cancelled", "refunded"}


def unique_sku(prefix: str = "SKU") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class Shop:
    def __init__(self, stack: Stack):
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        self.orders = httpx.AsyncClient(base_url=stack.url("orders"), timeout=20, limits=limits)
        self.inventory = httpx.AsyncClient(base_url=stack.url("inventory"), timeout=20)
        self.notifications = httpx.AsyncClient(base_url=stack.url("notifications"), timeout=20)

    async def close(self) -> None:
        for client in (self.orders, self.inventory, self.notifications):
            await client.aclose()

    async def __aenter__(self) -> Shop:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def put_product(self, sku: str, stock: int, price: int = 1999) -> dict[str, Any]:
        response = await self.inventory.put(
            f"/v1/products/{sku}",
            json={"name": f"Product {sku}", "price": price, "currency": "usd", "stock": stock},
            headers=ADMIN,
        )
        assert response.status_code in (200, 201), response.text
        return response.json()

    async def product(self, sku: str) -> dict[str, Any]:
        response = await self.inventory.get(f"/v1/products/{sku}", headers=STOREFRONT)
        assert response.status_code == 200, response.text
        return response.json()

    async def place_order(
        self,
        items: list[tuple[str, int]],
        payment_method: str = "pm_card_visa",
        key: str | None = None,
        email: str = "ann@example.com",
    ) -> httpx.Response:
        body = {
            "customer": {"id": "cus_test", "email": email},
            "items": [{"sku": sku, "quantity": quantity} for sku, quantity in items],
            "payment_method": payment_method,
        }
        headers = {**STOREFRONT, "Idempotency-Key": key or uuid.uuid4().hex}
        # A storefront retries a checkout whose connection broke: the Idempotency-Key makes
        # that safe (the same order comes back, never a second one).
        for attempt in range(3):
            try:
                return await self.orders.post("/v1/orders", json=body, headers=headers)
            except httpx.TransportError:
                if attempt == 2:
                    raise
                await asyncio.sleep(0.2 * (attempt + 1))
        raise AssertionError("unreachable")

    async def wait_stock(self, sku: str, stock: int, reserved: int, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while True:
            product = await self.product(sku)
            if (product["stock"], product["reserved"]) == (stock, reserved):
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{sku}: {product}, expected stock {stock} reserved {reserved}"
                )
            await asyncio.sleep(0.05)

    async def order(self, order_id: str) -> dict[str, Any]:
        response = await self.orders.get(f"/v1/orders/{order_id}", headers=STOREFRONT)
        assert response.status_code == 200, response.text
        return response.json()

    async def wait_final(self, order_id: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            order = await self.order(order_id)
            if order["status"] in FINAL:
                return order
            if time.monotonic() > deadline:
                raise AssertionError(f"order {order_id} still {order['status']} after {timeout}s")
            await asyncio.sleep(0.1)

    async def mails(self, order_id: str) -> list[dict[str, Any]]:
        response = await self.notifications.get(
            "/v1/notifications", params={"order_id": order_id}, headers=STOREFRONT
        )
        assert response.status_code == 200, response.text
        return response.json()["items"]

    async def wait_mail(self, order_id: str, kind: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for mail in await self.mails(order_id):
                if mail["kind"] == kind:
                    return mail
            await asyncio.sleep(0.1)
        raise AssertionError(f"no {kind} mail for {order_id} after {timeout}s")


async def wait_status(
    shop: Shop, order_id: str, status: str, timeout: float = 30
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        order = await shop.order(order_id)
        if order["status"] == status:
            return order
        if time.monotonic() > deadline:
            raise AssertionError(f"order {order_id} is {order['status']}, not {status}")
        await asyncio.sleep(0.1)
