"""After the load: wait, bounded, until every order the run placed is final and the campaign
has finished, so that the audit judges a quiet system and the report counts every order."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx

from bench.surge import journal

CONCURRENCY = 16
CAMPAIGN_DONE = ("completed", "cancelled")


async def settle(
    orders: httpx.AsyncClient, notifications: httpx.AsyncClient, folder: Path, patience: float
) -> dict[str, Any]:
    started = time.monotonic()
    deadline = started + patience
    kinds = {row["order_id"]: row["kind"] for row in journal.read_csv(folder / journal.ACCEPTED)}
    rows = {row["order_id"]: row for row in journal.read_csv(folder / journal.SEEN_FINAL)}
    campaign = journal.read_json(folder / journal.CAMPAIGN, {})
    while True:
        open_ids = [order_id for order_id in kinds if order_id not in rows]
        rows.update(await fetch_final(orders, open_ids, kinds))
        if "id" in campaign:
            campaign["progress"] = await campaign_progress(notifications, campaign["id"])
        still_open = sum(order_id not in rows for order_id in kinds)
        campaign_busy = campaign.get("progress", {}).get("status") not in (None, *CAMPAIGN_DONE)
        if (not still_open and not campaign_busy) or time.monotonic() > deadline:
            break
        await asyncio.sleep(1.0)
    last_seen = await fetch_final(
        orders, [i for i in kinds if i not in rows], kinds, any_status=True
    )
    journal.write_csv(
        folder / journal.ORDERS, journal.ORDER_COLUMNS, [*rows.values(), *last_seen.values()]
    )
    if campaign:
        journal.write_json(folder / journal.CAMPAIGN, campaign)
    return {
        "orders accepted": len(kinds),
        "orders final": len(rows),
        "orders still open": len(kinds) - len(rows),
        "settle seconds": round(time.monotonic() - started, 1),
        "settle timeout": patience,
    }


async def fetch_final(
    client: httpx.AsyncClient, order_ids: list[str], kinds: dict[str, str], any_status: bool = False
) -> dict[str, dict[str, Any]]:
    """The orders among `order_ids` that are final now (or all of them, with `any_status`)."""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(order_id: str) -> dict[str, Any] | None:
        async with gate:
            try:
                response = await client.get(f"/v1/orders/{order_id}")
            except httpx.HTTPError:
                return None
        if response.status_code != 200:
            return None
        order = response.json()
        if order["status"] not in journal.FINAL and not any_status:
            return None
        return journal.order_row(order, kinds[order_id])

    found = await asyncio.gather(*(one(order_id) for order_id in order_ids))
    return {row["order_id"]: row for row in found if row is not None}


async def campaign_progress(client: httpx.AsyncClient, campaign_id: str) -> dict[str, Any]:
    try:
        response = await client.get(f"/v1/campaigns/{campaign_id}")
    except httpx.HTTPError as exc:
        return {"error": repr(exc)}
    if response.status_code != 200:
        return {"error": f"HTTP {response.status_code}"}
    return response.json()
