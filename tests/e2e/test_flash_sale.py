"""A stampede on a flash-sale sku: thousands of concurrent checkouts, no oversell, one charge
per paid order, the audit green. Marked slow; CI runs it."""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from collections import Counter
from datetime import UTC, datetime

import pytest

from devtools.harness.shop import Shop, unique_sku
from devtools.harness.stack import Stack
from ops.audit import run_audit
from tests.support.traffic import all_final

CHECKOUTS = int(os.environ.get("FLASH_SALE_CHECKOUTS", "2000"))
STOCK = 50
CLIENTS = 100  # concurrent storefront connections


async def checkout_all(shop: Shop, bodies: list[list[tuple[str, int]]]) -> list[dict]:
    gate = asyncio.Semaphore(CLIENTS)

    async def one(items: list[tuple[str, int]]) -> dict:
        async with gate:
            response = await shop.place_order(items, email=f"{uuid.uuid4().hex[:8]}@example.com")
            assert response.status_code == 202, response.text
            return response.json()

    return await asyncio.gather(*(one(items) for items in bodies))


async def audit_for(stack: Stack, since: datetime, order_ids: set[str]) -> None:
    verdicts = await run_audit(stack.settings(), since, str(stack.maildir))
    for verdict in verdicts[:4]:
        assert verdict.ok, (verdict.name, verdict.violations[:10])
    ours = [v for v in verdicts[4].violations if any(order_id in v for order_id in order_ids)]
    assert ours == [], ours


async def wait_confirmations(shop: Shop, paid: list[str]) -> None:
    for order_id in paid:
        await shop.wait_mail(order_id, "order_confirmation", timeout=120)


@pytest.mark.slow
async def test_flash_sale_sells_exactly_the_stock(stack: Stack, shop: Shop):
    sku = unique_sku("FLASH")
    await shop.put_product(sku, stock=STOCK, price=9900)
    since = datetime.now(UTC)

    started = time.monotonic()
    accepted = await checkout_all(shop, [[(sku, 1)]] * CHECKOUTS)
    intake = time.monotonic() - started
    orders = await all_final(shop, {order["id"] for order in accepted})
    elapsed = time.monotonic() - started
    assert len(orders) == CHECKOUTS, f"{CHECKOUTS - len(orders)} orders not final"
    print(
        f"\nflash sale: {CHECKOUTS} checkouts accepted in {intake:.1f}s "
        f"({CHECKOUTS / intake:.0f}/s), all final in {elapsed:.1f}s "
        f"({CHECKOUTS / elapsed:.0f} checkouts/s end to end)"
    )

    outcomes = Counter((order["status"], order["reason"]) for order in orders.values())
    assert outcomes == {("paid", None): STOCK, ("rejected", "out_of_stock"): CHECKOUTS - STOCK}
    await shop.wait_stock(sku, stock=0, reserved=0)
    paid = [order_id for order_id, order in orders.items() if order["status"] == "paid"]
    await wait_confirmations(shop, paid)
    await audit_for(stack, since, set(orders))


@pytest.mark.slow
async def test_overlapping_multi_item_orders_never_deadlock_and_reserve_all_or_nothing(
    stack: Stack, shop: Shop
):
    skus = [unique_sku(f"MULTI{n}") for n in range(5)]
    for sku in skus:
        await shop.put_product(sku, stock=40, price=1000)
    since = datetime.now(UTC)
    rng = random.Random(7)
    bodies = [[(sku, 1) for sku in rng.sample(skus, 3)] for _ in range(CHECKOUTS // 4)]

    accepted = await checkout_all(shop, bodies)
    orders = await all_final(shop, {order["id"] for order in accepted})
    assert len(orders) == len(accepted), f"{len(accepted) - len(orders)} orders not final"

    sold = Counter()
    for order in orders.values():
        assert order["status"] in ("paid", "rejected"), order
        if order["status"] == "paid":
            assert all(item["unit_price"] == 1000 for item in order["items"])
            sold.update(item["sku"] for item in order["items"])
    for sku in skus:
        assert 40 - sold[sku] >= 0
        await shop.wait_stock(sku, stock=40 - sold[sku], reserved=0)
    assert sum(sold.values()) > 0
    paid = [order_id for order_id, order in orders.items() if order["status"] == "paid"]
    await wait_confirmations(shop, paid)
    await audit_for(stack, since, set(orders))
