"""Faults rehearsed against the running stack while orders flow: kill -9 a pool mid-task,
restart RabbitMQ and PostgreSQL, take Stripe and SMTP away, feed poison messages. After each,
the system settles and the contract's invariants are audited: nothing lost, nothing twice.

`make test` runs the CI subset (`fault_ci`); `make faults` runs every scenario (`fault_full`
too) with longer outages.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import pytest

from ops.audit import run_audit
from shared.config import Settings
from tests.faults.report import ROWS, Row
from tests.support import emulator
from tests.support.shop import Shop, unique_sku
from tests.support.stack import Stack, rabbitmqctl
from tests.support.traffic import Traffic, all_final

FULL = os.environ.get("DOORBUSTER_FAULTS") == "full"
OUTAGE = 20.0 if FULL else 10.0
POOLS = ("payments-pool", "orders-pool", "notifications-pool")


def audit_settings(stack: Stack) -> Settings:
    return Settings(
        rabbitmq_url=stack.env["RABBITMQ_URL"],
        database_url=stack.env["DATABASE_URL"],
        stripe_api_base=stack.stripe_url,
    )


async def wait_confirmations(shop: Shop, paid: list[str], timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    for order_id in paid:
        await shop.wait_mail(
            order_id, "order_confirmation", timeout=max(deadline - time.monotonic(), 1)
        )


async def scenario(
    name: str,
    stack: Stack,
    shop: Shop,
    fault: Callable[[], Awaitable[None]],
    rate: float = 6.0,
) -> Row:
    """Traffic before, during and after `fault`; then settle, audit and record a row."""
    sku = unique_sku("FAULT")
    await shop.put_product(sku, stock=100_000, price=1234)
    since = datetime.now(UTC)
    traffic = Traffic(shop, sku, rate=rate)
    runner = asyncio.create_task(traffic.run())
    await asyncio.sleep(3)
    await fault()
    fault_over = time.monotonic()
    await asyncio.sleep(3)
    await traffic.stop()
    runner.cancel()

    accepted = set(traffic.accepted)
    orders = await all_final(shop, accepted, timeout=300)
    recover = time.monotonic() - fault_over
    paid = [order_id for order_id, order in orders.items() if order["status"] == "paid"]
    await wait_confirmations(shop, paid)
    verdicts = await run_audit(audit_settings(stack), since, str(stack.maildir))
    duplicates = sum(
        "times" in v or "confirmations" in v
        for verdict in verdicts[1:4]
        for v in verdict.violations
    )
    row = Row(
        name,
        accepted=len(accepted),
        final=len(orders),
        lost=len(accepted) - len(orders),
        duplicates=duplicates,
        recover_s=recover,
        note=f"{traffic.retries} client retries"
        + (f", {traffic.gave_up} gave up" if traffic.gave_up else ""),
    )
    ROWS.append(row)
    for verdict in verdicts[:4]:
        assert verdict.ok, (name, verdict.name, verdict.violations[:10])
    assert row.lost == 0 and row.duplicates == 0, row
    assert {order["status"] for order in orders.values()} == {"paid"}, name
    assert traffic.gave_up == 0
    return row


@pytest.mark.fault_ci
@pytest.mark.parametrize("pool", POOLS)
async def test_kill_9_a_pool_mid_task(stack: Stack, shop: Shop, pool: str):
    async def kill_and_restart() -> None:
        for _ in range(2):
            stack.stop(pool, sig=signal.SIGKILL)
            await asyncio.sleep(1.5)
            stack.start(pool)
            await asyncio.sleep(2)

    if pool == "payments-pool":
        # Slow charges so that several are in flight when the pool dies.
        with emulator.faults(stack, latency_ms=400):
            await scenario(f"a. kill -9 {pool}", stack, shop, kill_and_restart)
    else:
        await scenario(f"a. kill -9 {pool}", stack, shop, kill_and_restart)


@pytest.mark.fault_ci
async def test_rabbitmq_stopped_and_started(stack: Stack, shop: Shop):
    async def broker_outage() -> None:
        assert rabbitmqctl("stop_app").returncode == 0
        try:
            await asyncio.sleep(OUTAGE)
            ready = await shop.orders.get("/readyz")
            assert ready.status_code == 503
        finally:
            assert rabbitmqctl("start_app").returncode == 0

    await scenario("b. RabbitMQ stopped and started", stack, shop, broker_outage)


@pytest.mark.fault_full
async def test_postgresql_restarted(stack: Stack, shop: Shop):
    version = sorted(os.listdir("/etc/postgresql"))[-1]

    async def database_restart() -> None:
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "stop", "-m", "fast"],
            check=True,
        )
        await asyncio.sleep(OUTAGE / 2)
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"], check=True
        )

    await scenario("c. PostgreSQL restarted", stack, shop, database_restart)


@pytest.mark.fault_ci
async def test_stripe_errors_and_timeouts_then_recovery(stack: Stack, shop: Shop):
    async def flaky_provider() -> None:
        with emulator.faults(stack, failure_rate=0.5, timeout_rate=0.2, hang_seconds=2):
            await asyncio.sleep(OUTAGE)

    await scenario("d. Stripe 500s and timeouts", stack, shop, flaky_provider)


@pytest.mark.fault_full
async def test_smtp_refusing_connections(stack: Stack, shop: Shop):
    async def smtp_outage() -> None:
        stack.stop("smtp")
        try:
            await asyncio.sleep(OUTAGE)
        finally:
            stack.start("smtp")

    await scenario("e. SMTP refusing connections", stack, shop, smtp_outage)
