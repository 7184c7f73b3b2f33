"""Black-Friday shoppers, for Locust (run by `python -m bench.surge`, never imported by tests).

Four kinds of users, weighted like a storefront's traffic at a doorbuster sale:
- browsers look at products and the catalog;
- buyers look at a product, check out and follow their order to a final status;
- flash buyers refresh the flash-sale product until the sale opens (with the surge), then all
  try to buy its few units: most of those orders end `rejected`/`out_of_stock`;
- trackers poll their order history and the status of recent orders.

Requests are named by route (`GET /v1/orders/{id}`), so the report groups them per route. Each
followed order adds a custom event `FLOW accept-to-<final status>` whose time is the server's
(created_at -> updated_at), so polling every half second does not blur it.
"""

from __future__ import annotations

import random
import time
import uuid
from typing import Any

import gevent
from locust import FastHttpUser, between, task

from bench.surge import journal
from bench.surge.recorder import DEFAULT_URLS, RUN
from bench.surge.shape import SurgeShape  # noqa: F401 - Locust runs the shape it finds here

RETRYABLE = {0, 409, 429, 502, 503, 504}  # 0: the connection failed
CHECKOUT_PATIENCE = 20.0  # seconds a shopper keeps retrying one checkout
CUSTOMERS = 500
DECLINED_SHARE = 0.03


class Shopper(FastHttpUser):
    abstract = True
    host = DEFAULT_URLS["orders"]

    def on_start(self) -> None:
        self.customer = f"surge-{RUN.options.run_id}-{random.randrange(CUSTOMERS)}"
        self.storefront = {"Authorization": f"Bearer {RUN.options.storefront_key}"}
        self.skus = RUN.options.skus.split(",")

    def url(self, service: str, path: str) -> str:
        return getattr(RUN.options, f"{service}_url") + path

    def view_product(self, sku: str) -> None:
        self.client.get(
            self.url("inventory", f"/v1/products/{sku}"),
            headers=self.storefront,
            name="GET /v1/products/{sku}",
        )

    def checkout(self, sku: str, kind: str, quantity: int = 1) -> dict[str, Any] | None:
        """Place an order; retry a shed or failed attempt with the same Idempotency-Key (safe:
        the same key never makes a second order), honouring Retry-After, for a while."""
        declined = kind == "catalog" and random.random() < DECLINED_SHARE
        body = {
            "customer": {"id": self.customer, "email": f"{self.customer}@surge.example.com"},
            "items": [{"sku": sku, "quantity": quantity}],
            "payment_method": "pm_card_chargeDeclined" if declined else "pm_card_visa",
        }
        headers = {**self.storefront, "Idempotency-Key": uuid.uuid4().hex}
        deadline = time.monotonic() + CHECKOUT_PATIENCE
        while True:
            with self.client.post(
                self.url("orders", "/v1/orders"),
                json=body,
                headers=headers,
                name="POST /v1/orders",
                catch_response=True,
            ) as response:
                if response.status_code in (200, 202):
                    order = response.json()
                    RUN.order_accepted(order["id"], kind)
                    return order
                delay = retry_after(response)
                response.failure(f"HTTP {response.status_code}")
            if response.status_code not in RETRYABLE or time.monotonic() + delay > deadline:
                return None
            gevent.sleep(delay)

    def follow(self, order: dict[str, Any], kind: str) -> None:
        """Poll the order until it is final, as an order-confirmation page does."""
        started, deadline = time.time(), time.monotonic() + RUN.options.follow_timeout
        while order["status"] not in journal.FINAL:
            if time.monotonic() > deadline:
                self.flow("accept-to-final", (time.time() - started) * 1000, "still not final")
                return
            gevent.sleep(RUN.options.poll_interval)
            with self.client.get(
                self.url("orders", f"/v1/orders/{order['id']}"),
                headers=self.storefront,
                name="GET /v1/orders/{id}",
                catch_response=True,
            ) as response:
                if response.status_code == 200:
                    order = response.json()
        row = journal.order_row(order, kind)
        RUN.order_final(row)
        self.flow(f"accept-to-{order['status']}", float(row["final_ms"] or 0.0))

    def flow(self, name: str, milliseconds: float, error: str | None = None) -> None:
        self.environment.events.request.fire(
            request_type="FLOW",
            name=name,
            response_time=milliseconds,
            response_length=0,
            response=None,
            context={},
            exception=RuntimeError(error) if error else None,
        )


def retry_after(response: Any) -> float:
    try:
        return min(float(response.headers.get("Retry-After") or 1.0), 10.0)
    except (TypeError, ValueError):
        return 1.0


class Browser(Shopper):
    weight = 5
    wait_time = between(0.5, 2.0)

    @task(4)
    def product(self) -> None:
        self.view_product(random.choice(self.skus))

    @task(1)
    def catalog(self) -> None:
        self.client.get(
            self.url("inventory", "/v1/products?limit=20"),
            headers=self.storefront,
            name="GET /v1/products",
        )


class Buyer(Shopper):
    weight = 3
    wait_time = between(1.0, 3.0)

    @task
    def buy(self) -> None:
        sku = random.choice(self.skus)
        self.view_product(sku)
        order = self.checkout(sku, "catalog", quantity=random.choice((1, 1, 1, 2)))
        if order is not None:
            self.follow(order, "catalog")


class FlashBuyer(Shopper):
    weight = 1
    wait_time = between(1.0, 3.0)

    @task
    def grab(self) -> None:
        sku = RUN.options.flash_sku
        if not RUN.flash_open:
            self.view_product(sku)
            return
        order = self.checkout(sku, "flash")
        if order is not None:
            self.follow(order, "flash")


class Tracker(Shopper):
    weight = 1
    wait_time = between(1.0, 3.0)

    @task(1)
    def history(self) -> None:
        self.client.get(
            self.url("orders", f"/v1/orders?customer_id={self.customer}&limit=10"),
            headers=self.storefront,
            name="GET /v1/orders?customer_id",
        )

    @task(2)
    def status(self) -> None:
        if RUN.recent_orders:
            order_id = random.choice(RUN.recent_orders)
            self.client.get(
                self.url("orders", f"/v1/orders/{order_id}"),
                headers=self.storefront,
                name="GET /v1/orders/{id}",
            )
