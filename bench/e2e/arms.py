"""The two arms `bench.e2e` drives alike: Doorbuster's stack and the plain Celery recipe.

An arm places one order (the same checkout body for both), reads its orders' status and times
from its own database (`created_at` at the checkout's commit, `updated_at` when it turned paid:
one clock, and no polling on the path it measures), and names its processes for the CPU count.
"""

from __future__ import annotations

import uuid
from typing import Protocol

import asyncpg
import httpx

from bench.plain_celery.arm import PlainArm
from devtools.harness.shop import Shop
from devtools.harness.stack import Stack, db_fetch

# Stand-ins for what runs elsewhere in production: reported beside the system, not in it.
STAND_INS = ("stripe", "smtp", "load generator")
ORDER_TIMES = "SELECT id, status, created_at, updated_at FROM orders WHERE id = ANY($1)"


class Arm(Protocol):
    name: str

    async def put_product(self, sku: str, stock: int, price: int) -> None: ...

    async def place(self, sku: str) -> str | None:
        """Check out one unit of `sku`; the order id when it was accepted."""

    async def order_times(self, ids: list[str]) -> list[asyncpg.Record]: ...

    def pids(self) -> dict[str, int]: ...

    async def close(self) -> None: ...


class Ours:
    name = "Doorbuster"

    def __init__(self, stack: Stack):
        self.stack = stack
        self.shop = Shop(stack)

    async def put_product(self, sku: str, stock: int, price: int) -> None:
        await self.shop.put_product(sku, stock=stock, price=price)

    async def place(self, sku: str) -> str | None:
        response = await self.shop.place_order([(sku, 1)])
        return response.json()["id"] if response.status_code == 202 else None

    async def order_times(self, ids: list[str]) -> list[asyncpg.Record]:
        return await db_fetch("orders", ORDER_TIMES, ids)

    def pids(self) -> dict[str, int]:
        return {name: popen.pid for name, popen in self.stack.running.items()}

    async def close(self) -> None:
        await self.shop.close()


class PlainCelery:
    name = "plain Celery"

    def __init__(self, arm: PlainArm, stand_ins: dict[str, int]):
        self.arm = arm
        self.stand_ins = stand_ins
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        self.client = httpx.AsyncClient(base_url=arm.api_url, timeout=20, limits=limits)

    async def put_product(self, sku: str, stock: int, price: int) -> None:
        await self.arm.fetch(
            "INSERT INTO products (sku, price, stock) VALUES ($1, $2, $3)", sku, price, stock
        )

    async def place(self, sku: str) -> str | None:
        body = {
            "customer": {"id": "cus_test", "email": "ann@example.com"},
            "items": [{"sku": sku, "quantity": 1}],
            "payment_method": "pm_card_visa",
        }
        response = await self.client.post(
            "/v1/orders", json=body, headers={"Idempotency-Key": uuid.uuid4().hex}
        )
        return response.json()["id"] if response.status_code == 202 else None

    async def order_times(self, ids: list[str]) -> list[asyncpg.Record]:
        return await self.arm.fetch(ORDER_TIMES, ids)

    def pids(self) -> dict[str, int]:
        return {**self.arm.pids(), **self.stand_ins}

    async def close(self) -> None:
        await self.client.aclose()
