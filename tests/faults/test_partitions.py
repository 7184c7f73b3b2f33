"""Partitions that drop packets: the path between the pools (or an API) and RabbitMQ stops
carrying bytes for longer than the heartbeats allow, while both sockets stay open and nobody
says goodbye (`CuttableProxy.stall`). Nothing closes a connection: each side has to find out by
itself, from missed heartbeats, that its peer is gone; then reconnect, get its unacknowledged
deliveries again, and do nothing twice.

n stalls every pool's connections for 40 s (`make faults` only: about 90 s with its stack);
o stalls the orders API's for 25 s, 50 s in `make faults` (on the session stack, whose orders
API already reaches the broker through a proxy: CI runs it).
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from devtools.harness import emulator
from devtools.harness.shop import Shop, unique_sku
from devtools.harness.stack import Stack
from tests.faults.test_faults import FULL, scenario
from tests.support.tcp_proxy import CuttableProxy

pytestmark = pytest.mark.timeout(900)
POOLS_STALL = 40.0
# In CI shorter than aiormq's 33 s: the API hears nothing, refuses to publish, and reconnects
# once the broker's close reaches it. `make faults`: longer, so it gives the connection up
# itself and tries to reconnect through the dead path.
API_STALL = 50.0 if FULL else 25.0
CLIENT_TIMEOUT = 5.0


async def checkouts_while_stalled(shop: Shop, sku: str, count: int = 4) -> list[tuple[int, float]]:
    """(status, seconds) of a few checkouts, each within the storefront's 5 s timeout."""
    answers = []
    for _ in range(count):
        asked = time.monotonic()
        async with asyncio.timeout(CLIENT_TIMEOUT):
            answer = await shop.place_order([(sku, 1)])
        answers.append((answer.status_code, round(time.monotonic() - asked, 2)))
        await asyncio.sleep(0.5)
    return answers


@pytest.mark.fault_full
async def test_pools_to_broker_stalled(
    pools_proxy: CuttableProxy, partition_stack: Stack, partition_shop: Shop
):
    """Every pool's broker connections stop carrying packets for 40 s, with charges (slowed to
    400 ms) and mails in flight: the pools find their connections dead by their heartbeats,
    reconnect once the path heals, their unacknowledged messages are redelivered, and every
    order is paid once, confirmed once, and the campaign sent once."""
    stack, shop = partition_stack, partition_shop
    sku = unique_sku("STALL")
    await shop.put_product(sku, stock=1000, price=990)
    seen: dict[str, object] = {}

    async def stalled() -> None:
        pools_proxy.stall()
        try:
            await asyncio.sleep(POOLS_STALL / 2)
            # The APIs reach the broker: checkout goes on (the charges wait in the queue).
            seen["checkouts"] = await checkouts_while_stalled(shop, sku)
            # By now (about 25 s in) each pool has missed two of the broker's heartbeats.
            await asyncio.sleep(POOLS_STALL / 2 - 4 * 0.5 - 6)
            seen["pools ready"] = await pools_ready(stack)
            await asyncio.sleep(6)
        finally:
            pools_proxy.resume()

    with emulator.faults(stack, latency_ms=400):
        await scenario(f"n. pools <-> broker stalled {POOLS_STALL:.0f} s", stack, shop, stalled)
    assert all(code == 202 for code, _ in seen["checkouts"]), seen  # type: ignore[attr-defined]
    # Every pool found its connection dead by itself (missed heartbeats), before the path healed.
    assert seen["pools ready"] == dict.fromkeys(seen["pools ready"], 503), seen  # type: ignore[arg-type]
    lost = [name for name in seen["pools ready"] if heartbeats_missed(stack, name)]  # type: ignore[union-attr]
    assert sorted(lost) == sorted(seen["pools ready"]), seen


async def pools_ready(stack: Stack) -> dict[str, int]:
    """Each pool's /readyz status (503 once its consumer lost the broker)."""
    async with httpx.AsyncClient(timeout=2) as client:
        return {
            name: (await client.get(process.health_url)).status_code
            for name, process in stack.processes.items()
            if name.endswith("-pool") and process.health_url
        }


def heartbeats_missed(stack: Stack, pool: str) -> bool:
    return "Too many heartbeats missed" in (stack.logs / f"{pool}.log").read_text()


@pytest.mark.fault_ci
async def test_orders_api_to_broker_stalled(stack: Stack, shop: Shop, broker_proxy: CuttableProxy):
    """The orders API's broker connection stops carrying packets for 25 s while orders flow:
    checkout keeps answering 202 within the client's timeout (into the outbox: a publish that
    gets no confirm is left to the relay), the API finds the connection dead, reconnects once
    the path heals, and the relay sends what waited; every order is paid once."""
    sku = unique_sku("STALL")
    await shop.put_product(sku, stock=1000, price=990)
    seen: dict[str, object] = {}

    async def stalled() -> None:
        broker_proxy.stall()
        try:
            await asyncio.sleep(API_STALL / 2)
            seen["checkouts"] = await checkouts_while_stalled(shop, sku)
            ready = await shop.orders.get("/readyz")
            seen["readyz"] = (ready.status_code, ready.json().get("detail"))
            await asyncio.sleep(API_STALL / 2 - 4 * 0.5)
        finally:
            broker_proxy.resume()

    with emulator.faults(stack, latency_ms=400):
        await scenario(f"o. orders API <-> broker stalled {API_STALL:.0f} s", stack, shop, stalled)
    assert all(code == 202 for code, _ in seen["checkouts"]), seen  # type: ignore[attr-defined]
    # Missed heartbeats say it long before aiormq gives the connection up (33 s at 10 s).
    status, detail = seen["readyz"]  # type: ignore[misc]
    assert status == 503 and "broker silent" in str(detail), seen
