"""Outages longer than the retry budgets: Stripe, then SMTP, fail for longer than a charge's
(or an order mail's) retries last, so those tasks are dead-lettered; once the provider is
back, the operator's runbook (docs/operations.md) redrives them with `doorbuster dlq redrive`
and every order is paid once and confirmed once.

The budgets are shortened so that each row runs in well under a minute: the payments pool is
restarted with PAYMENT_MAX_RETRIES=3 and no jitter (1, 2, 2 s: about 5 s), and the session
stack's mail retries are already short (1, 2, 2, 2, 2 s: about 9 s, devtools/harness/stack.py).
The outage lasts LONG_OUTAGE, so the tasks of the orders placed during its first part die."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import aio_pika
import pytest

from devtools.harness import emulator
from devtools.harness.shop import Shop
from devtools.harness.stack import Stack
from shared.messaging.topology import QueueName, dead_letter_queue
from tests.faults.test_faults import OUTAGE, scenario
from tests.support.ops import doorbuster_json

pytestmark = pytest.mark.timeout(900)
# Longer than either shortened budget by far, shorter than the campaign batches' (about 40 s).
LONG_OUTAGE = OUTAGE + 5
# The shortened payment budget below: retries after 1, 2 and 2 s.
SHORT_PAYMENT_BUDGET_SECONDS = 5
SHORT_PAYMENT_RETRIES = {
    "PAYMENT_MAX_RETRIES": "3",
    "PAYMENT_RETRY_BACKOFF_SECONDS": "1",
    "PAYMENT_RETRY_BACKOFF_MAX_SECONDS": "2",
    "PAYMENT_RETRY_JITTER": "false",
}


async def dead_letter_depth(stack: Stack, queue: QueueName) -> int:
    connection = await aio_pika.connect(stack.env["RABBITMQ_URL"])
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(dead_letter_queue(queue), passive=True)
        return declared.declaration_result.message_count or 0
    finally:
        await connection.close()


async def clear_dead_letters(stack: Stack, queue: QueueName) -> None:
    """Dead letters earlier tests of the session left (and asserted on) are dropped, so that
    the redrive below moves only this outage's: an old poison message redriven would die
    again and read as a new, unexplained dead letter."""
    connection = await aio_pika.connect(stack.env["RABBITMQ_URL"])
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(dead_letter_queue(queue), passive=True)
        await declared.purge()
    finally:
        await connection.close()


async def dead_letters_settled(
    stack: Stack, queue: QueueName, stuck: Callable[[], Awaitable[int]], timeout: float = 90
) -> int:
    """Wait until every task the outage touched has either succeeded on a retry or died: the
    items left stuck (orders unpaid, mails failed) are exactly the dead letters, twice in a
    row a second apart. Returns how many died."""
    deadline, agreed = time.monotonic() + timeout, 0
    while True:
        depth, left = await dead_letter_depth(stack, queue), await stuck()
        agreed = agreed + 1 if depth == left else 0
        if agreed == 2:
            return depth
        assert time.monotonic() < deadline, f"{queue}: {depth} dead letters, {left} stuck"
        await asyncio.sleep(1)


def redrive(stack: Stack, queue: QueueName) -> int:
    """Step 3 of the runbook: `doorbuster dlq redrive <queue>`; how many it moved."""
    moved = doorbuster_json(stack.env, "dlq", "redrive", queue.value)
    assert {row["to_queue"] for row in moved} <= {queue.value}, moved
    return len(moved)


@pytest.fixture
def short_payment_retries(stack: Stack) -> Iterator[None]:
    """The payments pool restarted with a payment retry budget of about 5 s, then restored."""
    name = "payments-pool"
    original = stack.processes[name]
    stack.stop(name)
    stack.processes[name] = replace(original, env={**original.env, **SHORT_PAYMENT_RETRIES})
    stack.start(name)
    stack.wait_healthy()
    try:
        yield
    finally:
        stack.stop(name)
        stack.processes[name] = original
        stack.start(name)
        stack.wait_healthy()


@pytest.mark.fault_ci
async def test_stripe_down_longer_than_the_charge_retries(
    stack: Stack, shop: Shop, short_payment_retries: None
):
    """Every charge fails for LONG_OUTAGE: the charges of the orders placed early in it use
    their whole budget and are dead-lettered, the orders stay `reserved` (money not taken,
    units held). Stripe recovers; `doorbuster dlq redrive payments` sends them back, and each
    order is charged once (audit check 2) and paid."""
    redriven: list[int] = []

    async def stripe_outage() -> None:
        await clear_dead_letters(stack, QueueName.PAYMENTS)
        started = datetime.now(UTC)
        with emulator.faults(stack, failure_rate=1.0):
            await asyncio.sleep(LONG_OUTAGE)
        ended = datetime.now(UTC)

        async def unpaid() -> int:
            [row] = await stack.fetch(
                "orders",
                "SELECT count(*) AS n FROM orders WHERE status = 'reserved'"
                " AND created_at BETWEEN $1 AND $2",
                started,
                ended,
            )
            return row["n"]

        died = await dead_letters_settled(stack, QueueName.PAYMENTS, unpaid)
        # Every charge whose budget ran out well before Stripe came back died, and only then
        # (with the default budget, about 2 minutes with jitter, hardly any would have).
        [early] = await stack.fetch(
            "orders",
            "SELECT count(*) AS placed, count(*) FILTER (WHERE status = 'reserved') AS unpaid"
            " FROM orders WHERE created_at BETWEEN $1 AND $2",
            started,
            ended - timedelta(seconds=SHORT_PAYMENT_BUDGET_SECONDS + 3),
        )
        assert early["placed"] > 0 and early["unpaid"] == early["placed"], dict(early)
        redriven.append(await asyncio.to_thread(redrive, stack, QueueName.PAYMENTS))
        assert redriven == [died]

    row = await scenario("l. Stripe down past its retries", stack, shop, stripe_outage)
    row.note += f"; {redriven[0]} charges redriven from payments.dlq"


@pytest.mark.fault_ci
async def test_smtp_down_longer_than_the_mail_retries(stack: Stack, shop: Shop):
    """SMTP refuses connections for LONG_OUTAGE: the order mails of the orders paid early in
    it use their whole budget, are recorded `failed` and dead-lettered. SMTP recovers;
    `doorbuster dlq redrive notifications.transactional` sends them back, and every paid
    order gets exactly one confirmation (audit check 4, the sink included)."""
    redriven: list[int] = []
    queue = QueueName.TRANSACTIONAL

    async def smtp_outage() -> None:
        await clear_dead_letters(stack, queue)
        started = datetime.now(UTC)
        stack.stop("smtp")
        try:
            await asyncio.sleep(LONG_OUTAGE)
        finally:
            stack.start("smtp")
            stack.wait_healthy()

        async def failed() -> int:
            [row] = await stack.fetch(
                "notifications",
                "SELECT count(*) AS n FROM notifications WHERE status = 'failed'"
                " AND created_at >= $1",
                started,
            )
            return row["n"]

        died = await dead_letters_settled(stack, queue, failed)
        assert died > 0, "no mail outlasted its retries: the outage was too short"
        redriven.append(await asyncio.to_thread(redrive, stack, queue))
        assert redriven == [died]
        # The redriven mails are sent (a `failed` row is claimed again): none is left failed.
        deadline = time.monotonic() + 60
        while await failed() and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        assert await failed() == 0

    row = await scenario("m. SMTP down past its retries", stack, shop, smtp_outage)
    row.note += f"; {redriven[0]} mails redriven from {dead_letter_queue(queue)}"
