"""The broker is unreachable when orders are committed: nothing is lost. The orders API keeps
accepting into its outbox, says it is not ready, and its relay publishes everything once the
broker is back; every order then completes, charged once."""

from __future__ import annotations

import asyncio
import time

import httpx

from devtools.harness.emulator import intents_of
from devtools.harness.shop import Shop, unique_sku
from devtools.harness.stack import Stack, db_fetch
from tests.support.tcp_proxy import CuttableProxy

ORDERS = 5


async def wait_ready(client: httpx.AsyncClient, expected: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while (await client.get("/readyz")).status_code != expected:
        if time.monotonic() > deadline:
            raise AssertionError(f"/readyz did not become {expected} in {timeout}s")
        await asyncio.sleep(0.1)


async def test_orders_committed_during_a_broker_outage_are_published_afterwards(
    stack: Stack, shop: Shop, broker_proxy: CuttableProxy
):
    sku = unique_sku("OUTAGE")
    await shop.put_product(sku, stock=ORDERS)
    await wait_ready(shop.orders, 200)

    broker_proxy.cut()
    try:
        await wait_ready(shop.orders, 503)
        responses = [await shop.place_order([(sku, 1)]) for _ in range(ORDERS)]
        assert [response.status_code for response in responses] == [202] * ORDERS
        order_ids = [response.json()["id"] for response in responses]

        await asyncio.sleep(2)  # longer than the relay's grace: it cannot publish either
        unpublished = await db_fetch(
            "orders",
            "SELECT count(*) AS n FROM outbox WHERE published_at IS NULL "
            "AND kwargs->>'order_id' = ANY($1::text[])",
            order_ids,
        )
        assert unpublished[0]["n"] == ORDERS
        assert {(await shop.order(order_id))["status"] for order_id in order_ids} == {"pending"}
    finally:
        broker_proxy.restore()

    started = time.monotonic()
    orders = await asyncio.gather(
        *(shop.wait_final(order_id, timeout=60) for order_id in order_ids)
    )
    print(f"recovered {ORDERS} orders {time.monotonic() - started:.1f}s after the broker came back")
    await wait_ready(shop.orders, 200)

    assert {order["status"] for order in orders} == {"paid"}
    for order in orders:
        succeeded = [pi for pi in intents_of(stack, order["id"]) if pi.status == "succeeded"]
        assert len(succeeded) == 1
    await shop.wait_stock(sku, stock=0, reserved=0)
