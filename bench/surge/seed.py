"""Before the load: the run's own catalog, its flash-sale sku, and the campaign's subscribers.

Every run gets fresh skus (`SURGE-<run>-<n>`), so its stock arithmetic (how many flash units
sold, how many orders rejected) is its own and never depends on an earlier run.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import httpx

SUBSCRIBER_BATCH = 1000
# The run's subscribers: the same addresses every run, so the audience does not grow.
SURGE_DOMAIN = "surge.example.com"


@dataclass
class Seeded:
    skus: list[str]
    flash_sku: str
    flash_stock: int
    subscribers: dict[str, int | str] = field(default_factory=dict)


def seed(
    inventory: httpx.Client,
    notifications: httpx.Client,
    run_id: str,
    catalog_size: int,
    flash_stock: int,
    subscribers: int,
) -> Seeded:
    skus = [f"SURGE-{run_id}-{index:02d}" for index in range(catalog_size)]
    for sku in skus:
        put_product(inventory, sku, f"Doorbuster deal {sku}", 1_000_000)
    flash_sku = f"SURGE-{run_id}-FLASH"
    put_product(inventory, flash_sku, "65-inch TV, flash sale", flash_stock)
    seeded = Seeded(skus, flash_sku, flash_stock)
    seeded.subscribers = import_subscribers(notifications, run_id, subscribers)
    return seeded


def put_product(client: httpx.Client, sku: str, name: str, stock: int) -> None:
    price = random.randrange(999, 99_999, 100)
    body = {"name": name, "price": price, "currency": "usd", "stock": stock}
    response = client.put(f"/v1/products/{sku}", json=body)
    if response.status_code not in (200, 201):
        raise RuntimeError(f"cannot create product {sku}: {response.status_code} {response.text}")


def import_subscribers(client: httpx.Client, run_id: str, count: int) -> dict[str, int | str]:
    """`POST /v1/subscribers` in batches. Where the route does not exist yet (404/405), say so
    and go on: the campaign step records the same."""
    totals: dict[str, int | str] = {"requested": count, "created": 0, "existing": 0}
    addresses = [
        {"email": f"fan-{index}@{SURGE_DOMAIN}", "name": f"Fan {index}"} for index in range(count)
    ]
    for start in range(0, count, SUBSCRIBER_BATCH):
        batch = addresses[start : start + SUBSCRIBER_BATCH]
        response = client.post("/v1/subscribers", json={"subscribers": batch})
        if response.status_code in (404, 405):
            return {**totals, "note": f"subscribers not available (HTTP {response.status_code})"}
        if response.status_code >= 300:
            return {**totals, "note": f"import refused: HTTP {response.status_code}"}
        answer = response.json()
        for key in ("created", "existing"):
            totals[key] = int(totals[key]) + int(answer.get(key, 0))
    return totals
