"""A charge redriven after the provider forgot its idempotency key, and `doorbuster reconcile`,
on a real orders database (migrated), the Stripe emulator run as its own process, the official
SDK and a throw-away RabbitMQ vhost. Discrepancies are made by hand, in the database and at
the emulator, as an outage or a bug would leave them."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import stripe

from devtools.harness.stack import (
    DB_PREFIX,
    ROOT,
    SLOT,
    drop_databases,
    fresh_vhost,
    rabbitmqctl,
)
from services.orders import billing
from services.orders.runtime import OrdersRuntime
from shared.infra.settings import Settings
from shared.messages.orders import ChargeOrder
from tests.integration.test_stripe_emulator import free_port, start_emulator, stop
from tests.support.ops import doorbuster

DATABASE = f"{DB_PREFIX}_reconcile"
VHOST = f"doorbuster-reconcile{SLOT or ''}"


@dataclass
class Site:
    env: dict[str, str]
    stripe_url: str

    def settings(self) -> Settings:
        return Settings(
            database_url=self.env["DATABASE_URL"],
            rabbitmq_url=self.env["RABBITMQ_URL"],
            stripe_api_base=self.stripe_url,
            db_pool_size=2,
        )

    def client(self) -> stripe.StripeClient:
        return stripe.StripeClient(
            "sk_test_doorbuster",
            base_addresses={"api": self.stripe_url},
            http_client=stripe.HTTPXClient(allow_sync_methods=True),
            max_network_retries=0,
        )

    def configure(self, **settings: Any) -> None:
        response = httpx.post(f"{self.stripe_url}/_emulator/config", json=settings, timeout=10)
        assert response.status_code == 200, response.text

    def charge_by_hand(self, order_id: str, amount: int = 2500) -> str:
        """A succeeded intent for the order, as our charge makes it (metadata.order_id)."""
        intent = self.client().v1.payment_intents.create(
            {
                "amount": amount,
                "currency": "usd",
                "payment_method": "pm_card_visa",
                "confirm": True,
                "metadata": {"order_id": order_id},
            }
        )
        return intent.id

    def succeeded(self, order_id: str) -> list[str]:
        intents = self.client().v1.payment_intents.list({"limit": 100}).auto_paging_iter()
        return [
            i.id
            for i in intents
            if i.status == "succeeded" and i.metadata.to_dict().get("order_id") == order_id
        ]

    def refunded(self, intent_id: str) -> int:
        refunds = self.client().v1.refunds.list({"payment_intent": intent_id})
        return sum(refund.amount for refund in refunds.auto_paging_iter())

    def reconcile(self, *args: str) -> subprocess.CompletedProcess:
        return doorbuster(self.env, "reconcile", *args, check=False)


async def drop_database() -> None:
    await drop_databases(f"{DATABASE}_orders")


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    asyncio.run(drop_database())
    fresh_vhost(VHOST)
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("STRIPE_")},
        "DOORBUSTER_ENV": "test",
        "DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:5432/{DATABASE}",
        "RABBITMQ_URL": f"amqp://guest:guest@127.0.0.1:5672/{VHOST}",
        "STRIPE_API_BASE": f"http://127.0.0.1:{port}",
        # The machine's PostgreSQL serves every checkout's suites: hold few connections.
        "DB_POOL_SIZE": "2",
    }
    migrated = subprocess.run(
        [sys.executable, "-m", "shared.infra.migrate", "orders"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert migrated.returncode == 0, migrated.stderr
    emulator = start_emulator(port)
    try:
        yield Site(env, f"http://127.0.0.1:{port}")
    finally:
        stop(emulator)
        rabbitmqctl("delete_vhost", VHOST)
        asyncio.run(drop_database())


@pytest.fixture
async def runtime(site: Site) -> AsyncIterator[OrdersRuntime]:
    site.configure(idempotency_ttl_seconds=24 * 3600)
    httpx.post(f"{site.stripe_url}/_emulator/reset", timeout=10).raise_for_status()
    runtime = OrdersRuntime(site.settings())
    await runtime.start(relay=False)
    await runtime.wait_for_broker(5)
    await runtime.db.fetch_alone("DELETE FROM orders")
    yield runtime
    await runtime.stop()


async def new_order(runtime: OrdersRuntime, status: str = "reserved", **values: Any) -> str:
    """An order row as the flow leaves it (priced), written by hand."""
    order_id = f"ord_{uuid.uuid4().hex}"
    row = {
        "reason": None,
        "payment_status": None,
        "payment_intent_id": None,
        "refund_reason": None,
        **values,
    }
    await runtime.db.fetch_alone(
        "INSERT INTO orders (id, status, customer_id, customer_email, payment_method, items,"
        " total, currency, reason, payment_status, payment_intent_id, refund_reason)"
        " VALUES ($1, $2, 'cus_1', 'ann@example.com', 'pm_card_visa',"
        ' \'[{"sku": "TV-55", "quantity": 1, "unit_price": 2500}]\'::jsonb, 2500, \'usd\','
        " $3, $4, $5, $6)",
        order_id,
        status,
        row["reason"],
        row["payment_status"],
        row["payment_intent_id"],
        row["refund_reason"],
    )
    return order_id


async def order_row(runtime: OrdersRuntime, order_id: str) -> dict[str, Any]:
    [row] = await runtime.db.fetch_alone("SELECT * FROM orders WHERE id = $1", order_id)
    return dict(row)


async def backdate(runtime: OrdersRuntime, order_id: str, hours: float) -> None:
    await runtime.db.fetch_alone(
        "UPDATE orders SET created_at = now() - make_interval(hours => $2) WHERE id = $1",
        order_id,
        float(hours),
    )


async def test_a_charge_redriven_after_the_key_expired_charges_once(
    site: Site, runtime: OrdersRuntime
):
    site.configure(idempotency_ttl_seconds=1)
    order_id = await new_order(runtime)
    # The first attempt reached the provider, but its answer was lost (a timeout, a crash):
    # the order is still `reserved`, the provider holds a succeeded intent.
    first = await runtime.payments.charge(order_id, 2500, "usd", "pm_card_visa")
    assert first.succeeded
    await asyncio.sleep(1.3)  # the provider forgets the key...
    await backdate(runtime, order_id, hours=25)  # ...and a day has passed: the redrive
    await billing.charge_order(runtime.uow(), runtime.payments, ChargeOrder(order_id=order_id))
    order = await order_row(runtime, order_id)
    assert (order["status"], order["payment_intent_id"]) == ("paid", first.intent_id)
    assert await asyncio.to_thread(site.succeeded, order_id) == [first.intent_id]


async def test_a_charge_of_an_old_order_the_provider_never_saw_charges_it(
    site: Site, runtime: OrdersRuntime
):
    order_id = await new_order(runtime)
    await backdate(runtime, order_id, hours=30)
    await billing.charge_order(runtime.uow(), runtime.payments, ChargeOrder(order_id=order_id))
    order = await order_row(runtime, order_id)
    [intent] = await asyncio.to_thread(site.succeeded, order_id)
    assert (order["status"], order["payment_intent_id"]) == ("paid", intent)


async def test_reconcile_fixes_each_discrepancy_and_exits_non_zero_while_one_remains(
    site: Site, runtime: OrdersRuntime
):
    clean = site.reconcile()
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "agree" in clean.stdout

    unrecorded = await new_order(runtime)  # charged, outcome never recorded
    unrecorded_pi = await asyncio.to_thread(site.charge_by_hand, unrecorded)
    cancelled = await new_order(runtime, "cancelled", reason="reservation_expired")
    cancelled_pi = await asyncio.to_thread(site.charge_by_hand, cancelled)  # money for nothing
    twice = await new_order(runtime)
    kept_pi = await asyncio.to_thread(site.charge_by_hand, twice)
    await runtime.db.fetch_alone(
        "UPDATE orders SET status = 'paid', payment_status = 'succeeded', payment_intent_id = $2"
        " WHERE id = $1",
        twice,
        kept_pi,
    )
    second_pi = await asyncio.to_thread(site.charge_by_hand, twice)  # a second charge
    unpaid = await new_order(
        runtime, "paid", payment_status="succeeded", payment_intent_id="pi_never_made"
    )

    dry = site.reconcile("--dry-run")
    assert dry.returncode == 1, dry.stdout + dry.stderr
    for kind, order_id in [
        ("charged_not_paid", unrecorded),
        ("charged_not_paid", cancelled),
        ("charged_twice", twice),
        ("paid_without_charge", unpaid),
    ]:
        assert f"[OPEN ] {kind} {order_id}" in dry.stdout, dry.stdout
    assert (await order_row(runtime, unrecorded))["status"] == "reserved"  # changed nothing

    fixed = site.reconcile()
    assert fixed.returncode == 1, fixed.stdout + fixed.stderr  # one needs an operator
    assert "3 discrepancy(ies) fixed, 1 remaining" in fixed.stdout, fixed.stdout
    assert f"[OPEN ] paid_without_charge {unpaid}" in fixed.stdout
    order = await order_row(runtime, unrecorded)
    assert (order["status"], order["payment_intent_id"]) == ("paid", unrecorded_pi)
    order = await order_row(runtime, cancelled)
    assert (order["status"], order["payment_status"]) == ("cancelled", "refunded")
    assert order["refund_reason"] == "paid_after_cancelled"
    refunded = await asyncio.to_thread(
        lambda: [site.refunded(pi) for pi in (unrecorded_pi, cancelled_pi, kept_pi, second_pi)]
    )
    assert refunded == [0, 2500, 0, 2500]
    assert (await order_row(runtime, twice))["payment_intent_id"] == kept_pi

    hour_ago = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    again = site.reconcile("--json", "--since", hour_ago)
    assert again.returncode == 1, again.stdout + again.stderr
    [left] = json.loads(again.stdout)["findings"]
    assert (left["kind"], left["order_id"], left["fixed"]) == ("paid_without_charge", unpaid, False)

    # The operator settles it (here: the customer paid again, and the order records it).
    paid_pi = await asyncio.to_thread(site.charge_by_hand, unpaid)
    await runtime.db.fetch_alone(
        "UPDATE orders SET payment_intent_id = $2 WHERE id = $1", unpaid, paid_pi
    )
    done = site.reconcile()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "the orders and the provider agree" in done.stdout
