"""Faults rehearsed against the running stack while orders flow and a campaign goes out: kill -9
a pool mid-task, restart RabbitMQ and PostgreSQL, take Stripe and SMTP away, feed poison
messages, block publishers with a broker memory alarm, crash-loop a pool with a message that
kills it. After each, the system settles and the contract's invariants are audited: every
order final, nothing lost, nothing twice (charges, confirmations, campaign mail), stock
consistent, and exactly the expected dead letters.

`make test` runs every scenario (`fault_ci`) with 10 s outages; `make faults`
(DOORBUSTER_FAULTS=full) runs them with 20 s outages, and any `fault_full` scenario.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import aio_pika
import asyncpg
import httpx
import orjson
import pytest

from devtools.harness import emulator
from devtools.harness.shop import Shop, unique_sku
from devtools.harness.stack import Stack, rabbitmqctl
from devtools.rabbit_cluster import Cluster
from ops.audit import Verdict, run_audit
from shared.infra.settings import get_settings
from shared.messaging.topology import TASK_EXCHANGE, QueueName
from shared.messaging.wire import OutgoingTask
from tests.faults.report import ROWS, Row
from tests.support.campaigns import Campaigns, addresses
from tests.support.crash_pool import CRASH_EXIT_CODE, CRASH_TASK
from tests.support.poison import (
    EMBED,
    poison_every_queue,
    poison_kinds,
    publish,
    take_dead_letters,
)
from tests.support.private_pg import PrivateCluster
from tests.support.traffic import Traffic, all_final
from workers.pools import POOLS, Pool

FULL = os.environ.get("DOORBUSTER_FAULTS") == "full"
OUTAGE = 20.0 if FULL else 10.0
POOL_PROCESSES = tuple(f"{pool}-pool" for pool in Pool)
SUBSCRIBERS = 300
# What a checkout may answer while a fault lasts: a problem document the storefront retries.
CLEAN_FAILURES = {"503 application/problem+json", "409 application/problem+json"}
pytestmark = pytest.mark.timeout(900)


async def wait_confirmations(shop: Shop, paid: list[str], timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    for order_id in paid:
        await shop.wait_mail(
            order_id, "order_confirmation", timeout=max(deadline - time.monotonic(), 1)
        )


async def new_audience(stack: Stack, campaigns: Campaigns) -> None:
    """A few hundred fresh subscribers, and nobody else (a campaign goes to every subscriber)."""
    await stack.fetch("notifications", "UPDATE subscribers SET status = 'unsubscribed'")
    imported = await campaigns.import_subscribers(
        addresses(f"f{uuid.uuid4().hex[:6]}-", SUBSCRIBERS)
    )
    assert imported == {"created": SUBSCRIBERS, "existing": 0}


async def campaign_done(campaigns: Campaigns, campaign_id: str, timeout: float = 300) -> dict:
    """The campaign once completed; survives an API that is still recovering."""
    deadline = time.monotonic() + timeout
    campaign: dict = {}
    while time.monotonic() < deadline:
        try:
            campaign = await campaigns.get(campaign_id)
        except Exception:  # noqa: BLE001 - the API may still be recovering
            campaign = {}
        if campaign.get("status") == "completed":
            break
        await asyncio.sleep(0.5)
    return campaign


def duplicates(verdicts: list[Verdict]) -> int:
    """Double charges, double confirmations, campaign mail sent twice: violations that say
    "<n> times" or "<n> confirmations" with n > 1."""
    count = 0
    for verdict in verdicts:
        for violation in verdict.violations:
            found = re.search(r"(\d+) (times|confirmations)", violation)
            count += bool(found and int(found.group(1)) > 1)
    return count


def lost_confirmations(verdicts: list[Verdict]) -> int:
    """Paid orders whose confirmation never went out."""
    return sum(
        violation.endswith(": 0 confirmations recorded")
        for verdict in verdicts
        for violation in verdict.violations
    )


async def scenario(
    name: str,
    stack: Stack,
    shop: Shop,
    fault: Callable[[], Awaitable[set[str] | None]],
    rate: float = 6.0,
    mail_in_flight_at_kill: int = 0,
) -> Row:
    """Traffic and a campaign before, during and after `fault` (which returns the ids of the
    dead letters it means to cause); then settle, audit and record a row.

    Campaign mail is at most once (docs/campaigns.md): the addresses a killed bulk process had
    claimed are recorded `failed` ("outcome unknown: the sending process was lost"), never sent
    again. A fault that kills the bulk pool passes `mail_in_flight_at_kill`, the most it may
    leave so (its claimed chunks); those are counted in the note, and any other address of the
    campaign not sent is lost."""
    campaigns = Campaigns(shop.notifications)
    sku = unique_sku("FAULT")
    await shop.put_product(sku, stock=100_000, price=1234)
    await new_audience(stack, campaigns)
    since = datetime.now(UTC)
    traffic = Traffic(shop, sku, rate=rate)
    runner = asyncio.create_task(traffic.run())
    await asyncio.sleep(3)
    campaign = await campaigns.create(subject=f"Fault drill {name}")
    expected_dead_letters = await fault() or set()
    fault_over = time.monotonic()
    await asyncio.sleep(3)
    await traffic.stop()
    runner.cancel()

    accepted = set(traffic.accepted)
    orders = await all_final(shop, accepted, timeout=300)
    campaign = await campaign_done(campaigns, campaign["id"])
    [unknown] = await stack.fetch(
        "notifications",
        "SELECT count(*) AS n FROM campaign_deliveries WHERE campaign_id = $1 AND status ="
        " 'failed' AND error = 'outcome unknown: the sending process was lost'",
        campaign["id"],
    )
    killed_mid_send = unknown["n"]
    paid = [order_id for order_id, order in orders.items() if order["status"] == "paid"]
    await wait_confirmations(shop, paid)
    # From the end of the fault to every order final, confirmed by mail, and the campaign out.
    recover = time.monotonic() - fault_over
    verdicts = await run_audit(stack.settings(), since, str(stack.maildir), expected_dead_letters)
    stored = await stack.fetch(
        "orders", "SELECT id FROM orders WHERE created_at >= $1 AND items @> $2::jsonb",
        since, f'[{{"sku": "{sku}"}}]',
    )  # fmt: skip
    unclean = {key: n for key, n in traffic.errors.items() if key not in CLEAN_FAILURES}
    row = Row(
        name,
        accepted=len(accepted),
        final=len(orders),
        lost=len(accepted)
        - len(orders)
        + SUBSCRIBERS
        - campaign.get("sent", 0)
        - killed_mid_send
        + lost_confirmations(verdicts),
        duplicates=duplicates(verdicts),
        recover_s=recover,
        note=f"{traffic.retries} client retries; campaign "
        f"{campaign.get('sent', 0)}/{SUBSCRIBERS} sent"
        + (f", {killed_mid_send} claimed by the killed process" if killed_mid_send else "")
        + (
            f"; {len(expected_dead_letters)} dead letters as expected"
            if expected_dead_letters
            else ""
        )
        + (f"; {traffic.gave_up} gave up" if traffic.gave_up else "")
        + (f"; unclean answers {unclean}" if unclean else ""),
    )
    ROWS.append(row)
    for verdict in verdicts:
        assert verdict.ok, (name, verdict.name, verdict.violations[:10])
    assert row.lost == 0 and row.duplicates == 0, row
    assert killed_mid_send <= mail_in_flight_at_kill, row
    assert {order["status"] for order in orders.values()} == {"paid"}, name
    # Failed: only what a killed bulk process had claimed (at most once), nothing else.
    assert campaign["status"] == "completed" and campaign["failed"] == killed_mid_send, campaign
    assert traffic.gave_up == 0
    assert {record["id"] for record in stored} == accepted, "an order was written but not accepted"
    assert not unclean, (name, traffic.errors)
    return row


@pytest.mark.fault_ci
@pytest.mark.parametrize("pool", POOL_PROCESSES)
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
    elif pool == "bulk-pool":
        # Each of the two kills may catch every thread with a chunk claimed, not yet recorded.
        in_flight = 2 * POOLS[Pool.BULK].concurrency * stack.settings().campaign_chunk_max
        await scenario(
            f"a. kill -9 {pool}", stack, shop, kill_and_restart, mail_in_flight_at_kill=in_flight
        )
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
            # What Kubernetes routes on: checkout still answers (into the outbox), so the
            # APIs stay in their Services.
            for api in (shop.orders, shop.inventory, shop.notifications):
                traffic = await api.get("/readyz/traffic")
                assert traffic.status_code == 200, traffic.text
                assert traffic.json()["checks"]["broker"] is False
        finally:
            assert rabbitmqctl("start_app").returncode == 0

    await scenario("b. RabbitMQ stopped and started", stack, shop, broker_outage)


@pytest.mark.fault_ci
async def test_postgresql_restarted(
    private_pg: PrivateCluster, private_stack: Stack, private_shop: Shop
):
    """The stack on its private cluster: stopped (fast: sessions cut mid-transaction), down
    for a while, started again."""

    async def database_restart() -> None:
        private_pg.stop("fast")
        try:
            await asyncio.sleep(OUTAGE / 2)
            ready = await private_shop.orders.get("/readyz")
            assert ready.status_code == 503
        finally:
            private_pg.start()

    await scenario("c. PostgreSQL restarted", private_stack, private_shop, database_restart)


@pytest.mark.fault_ci
async def test_stripe_errors_and_timeouts_then_recovery(stack: Stack, shop: Shop):
    async def flaky_provider() -> None:
        with emulator.faults(stack, failure_rate=0.5, timeout_rate=0.2, hang_seconds=2):
            await asyncio.sleep(OUTAGE)

    await scenario("d. Stripe 500s and timeouts", stack, shop, flaky_provider)


@pytest.mark.fault_ci
async def test_smtp_refusing_connections(private_stack: Stack, private_shop: Shop):
    """On the stack with the production mail retry policy: an outage shorter than its budget
    (about 6 minutes) loses no mail and sends none twice."""

    async def smtp_outage() -> None:
        private_stack.stop("smtp")
        try:
            await asyncio.sleep(OUTAGE)
        finally:
            private_stack.start("smtp")

    await scenario("e. SMTP refusing connections", private_stack, private_shop, smtp_outage)


@pytest.mark.fault_ci
async def test_poison_messages_on_every_queue(stack: Stack, shop: Shop, tmp_path: Path):
    """Malformed JSON, an unknown task, an armed pickle and an oversized payload on each of
    the four queues, while orders flow: each dead-lettered with its reason logged, none run,
    and the pools keep paying orders."""
    marker = tmp_path / "unpickled"
    kinds = poison_kinds(str(marker), get_settings().max_message_bytes)
    sku = unique_sku("POISON")
    published: dict = {}

    async def poison() -> set[str]:
        published.update(
            await poison_every_queue(stack.env["RABBITMQ_URL"], kinds, "ord_poison", sku)
        )
        await asyncio.sleep(2)
        return set(published)

    await scenario("f. poison on every queue", stack, shop, poison)

    dead = await take_dead_letters(stack.env["RABBITMQ_URL"], set(published))
    assert dead.keys() == published.keys()
    logs = {pool: (stack.logs / f"{pool}.log").read_text() for pool in POOL_PROCESSES}
    for task_id, (queue, kind) in published.items():
        assert (dead[task_id]["reason"], dead[task_id]["queue"]) == ("rejected", queue.value)
        said = [line for log in logs.values() for line in log.splitlines() if task_id in line]
        assert any(f"poison message dead-lettered: {kind.reason}" in line for line in said), (
            kind.kind,
            queue,
            said,
        )
    assert not marker.exists(), "a worker unpickled a message"
    assert "eve@example.com" not in "".join(logs.values())


@pytest.mark.fault_full
async def test_kill_9_the_rabbitmq_node_leading_payments(
    rabbit_cluster: Cluster, cluster_stack: Stack, cluster_shop: Shop
):
    """Quorum queues on three nodes: the node that leads `payments` dies mid-surge (kill -9,
    no goodbye), another node takes the lead, clients reconnect through the Service-like
    proxy, unacknowledged charges are redelivered; then the node comes back and rejoins."""
    vhost = cluster_stack.site.vhost

    async def leader_lost() -> None:
        leader = rabbit_cluster.queue_leader(vhost, QueueName.PAYMENTS)
        rabbit_cluster.kill(leader)
        try:
            await asyncio.sleep(OUTAGE)
            assert rabbit_cluster.queue_leader(vhost, QueueName.PAYMENTS) != leader
        finally:
            await asyncio.to_thread(rabbit_cluster.start_node, leader)

    # Slow charges, so that several are unacknowledged on the lost node when it dies.
    with emulator.faults(cluster_stack, latency_ms=300):
        await scenario(
            "g. kill -9 the RabbitMQ node leading payments (3 nodes, quorum)",
            cluster_stack,
            cluster_shop,
            leader_lost,
        )
    for queue in QueueName:
        arguments = rabbit_cluster.queue_arguments(vhost, queue.value)
        assert arguments["x-queue-type"] == "quorum", (queue, arguments)


@pytest.mark.fault_full
async def test_retries_with_a_countdown_on_quorum_queues(cluster_stack: Stack, cluster_shop: Shop):
    """Charges retried with a countdown (Stripe 500s and timeouts) on quorum queues travel
    through Celery's native delayed delivery (`celery_delayed_*`) and come back to `payments`:
    every order is paid once."""

    async def flaky_provider() -> None:
        with emulator.faults(cluster_stack, failure_rate=0.5, timeout_rate=0.2, hang_seconds=2):
            await asyncio.sleep(OUTAGE)

    await scenario(
        "h. Stripe 500s and timeouts (quorum)", cluster_stack, cluster_shop, flaky_provider
    )
    bindings = await cluster_stack_bindings(cluster_stack)
    assert ("celery_delayed_delivery", TASK_EXCHANGE) in bindings, bindings


async def cluster_stack_bindings(stack: Stack) -> set[tuple[str, str]]:
    """(source, destination) of every binding in the stack's vhost, from the management API."""
    settings = stack.settings()
    async with httpx.AsyncClient(base_url=settings.rabbitmq_management_url, timeout=10) as api:
        response = await api.get(f"/api/bindings/{quote(stack.site.vhost, safe='')}")
    response.raise_for_status()
    return {(b["source"], b["destination"]) for b in response.json()}


async def set_read_only(stack: Stack, database: str, read_only: bool) -> None:
    """A failover seen from the clients: every session of `database` is cut, and the sessions
    that reconnect find the server read-only (or writable again)."""
    connection = await asyncpg.connect(f"{stack.site.pg_server}/postgres")
    try:
        if read_only:
            await connection.execute(
                f'ALTER DATABASE "{database}" SET default_transaction_read_only = on'
            )
        else:
            await connection.execute(
                f'ALTER DATABASE "{database}" RESET default_transaction_read_only'
            )
        await connection.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = $1 AND pid <> pg_backend_pid()",
            database,
        )
    finally:
        await connection.close()


@pytest.mark.fault_ci
async def test_orders_database_read_only(private_stack: Stack, private_shop: Shop):
    """The orders database fails over to a read-only server for a while: checkout answers 503
    problem+json with Retry-After (nothing written), the pools retry their writes as transient
    (none dead-lettered), and everything settles once it is writable again."""
    database = f"{private_stack.site.db_prefix}_orders"

    async def read_only() -> None:
        await set_read_only(private_stack, database, True)
        try:
            await asyncio.sleep(OUTAGE / 2)
            answer = await private_shop.place_order([(unique_sku("RO"), 1)])
            assert answer.status_code == 503, answer.text
            assert answer.headers["content-type"] == "application/problem+json"
            assert "retry-after" in answer.headers
            await asyncio.sleep(OUTAGE / 2)
        finally:
            await set_read_only(private_stack, database, False)

    await scenario(
        "i. orders database read-only (failover)", private_stack, private_shop, read_only
    )


async def retry_logged_after(log: Path, since: float, timeout: float = 15.0) -> None:
    """Wait until the pool's JSON log holds a charge that failed and is retried (the task shell
    logs `task raised TransientPaymentError`) stamped after `since` (seconds since the epoch)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            if "task raised TransientPaymentError" not in line:
                continue
            try:
                stamp = orjson.loads(line)["timestamp"]
            except (orjson.JSONDecodeError, KeyError, TypeError):
                continue  # not one of the pool's JSON records
            if datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() > since:
                return
        await asyncio.sleep(0.2)
    raise AssertionError(f"no charge retried within {timeout} s of every charge failing")


@pytest.mark.fault_ci
async def test_broker_memory_alarm(alarm_broker: Cluster, alarm_stack: Stack, alarm_shop: Shop):
    """A memory alarm on the broker (watermark near zero) blocks every publishing connection
    for a while, with charges retrying on a failing Stripe: checkout keeps answering 202 (into
    the outbox) well within a 5 s client timeout, the APIs' `/readyz` says the broker is
    blocked, the payments pool's threads are not wedged by a retry they cannot publish (the
    message is requeued instead), and everything drains once the alarm clears."""
    node = alarm_broker.nodes[0]
    sku = unique_sku("ALARM")
    await alarm_shop.put_product(sku, stock=1000, price=990)
    seen: dict[str, object] = {}

    def watermark(value: str) -> None:
        result = alarm_broker.ctl(node, "set_vm_memory_high_watermark", value)
        assert result.returncode == 0, result.stderr

    async def memory_alarm() -> None:
        # Charges in flight fail half the time, so that some retry while the broker blocks.
        with emulator.faults(alarm_stack, failure_rate=0.5):
            await asyncio.sleep(4)
            # From here every charge fails, and the alarm waits for a retry logged after that: a
            # charge failing every time retries 8 times over about a minute, so its next retry
            # meets the blocked broker for sure. (Raising the alarm first left it to chance
            # whether a retry was waiting at that moment; a fresh-clone CI run saw none.)
            emulator.configure(alarm_stack, failure_rate=1.0)
            await retry_logged_after(alarm_stack.logs / "payments-pool.log", time.time())
            await asyncio.to_thread(watermark, "0.0000001")
            try:
                started = time.monotonic()
                # Connections are blocked once they publish: the orders API publishes the
                # traffic's reserves, so it sees `connection.blocked` within a second or so.
                ready = await alarm_shop.orders.get("/readyz")
                while "blocked" not in ready.text and time.monotonic() - started < 10:
                    await asyncio.sleep(0.2)
                    ready = await alarm_shop.orders.get("/readyz")
                seen["readyz"] = (ready.status_code, ready.json().get("detail"))
                answers = []
                for _ in range(5):
                    asked = time.monotonic()
                    async with asyncio.timeout(5):  # the client's timeout
                        answer = await alarm_shop.place_order([(sku, 1)])
                    answers.append((answer.status_code, round(time.monotonic() - asked, 2)))
                    await asyncio.sleep(0.5)
                seen["checkouts"] = answers
                await asyncio.sleep(max(OUTAGE - (time.monotonic() - started), 0))
            finally:
                await asyncio.to_thread(watermark, "0.2")

    await scenario("j. broker memory alarm", alarm_stack, alarm_shop, memory_alarm)
    status, detail = seen["readyz"]  # type: ignore[misc]
    assert status == 503 and "broker blocked" in str(detail), seen
    assert all(code == 202 for code, _ in seen["checkouts"]), seen  # type: ignore[attr-defined]
    payments_log = (alarm_stack.logs / "payments-pool.log").read_text()
    assert "retry could not be published" in payments_log, "no retry met the alarm"


@pytest.fixture
def crash_target(request: pytest.FixtureRequest) -> tuple[Stack, Shop]:
    """The session's stack (classic queues) or the cluster's (quorum), by the test's `queues`;
    looked up here, outside the test's event loop (the stacks' fixtures are synchronous)."""
    names = ("stack", "shop")
    if request.node.callspec.params["queues"] == "quorum":
        names = ("cluster_stack", "cluster_shop")
    return request.getfixturevalue(names[0]), request.getfixturevalue(names[1])


@pytest.mark.parametrize(
    "queues",
    [
        pytest.param("classic", marks=pytest.mark.fault_ci),
        # The three-node cluster's 40 s start does not fit CI's time (rows g and h).
        pytest.param("quorum", marks=pytest.mark.fault_full),
    ],
)
async def test_a_message_that_kills_its_worker_every_time(
    crash_target: tuple[Stack, Shop], queues: str, tmp_path: Path
):
    """A charge-queue message whose task kills the payments pool process (`os._exit`) every
    time it runs, on classic queues and on the cluster's quorum queues. The pool is restarted
    each time (as Kubernetes restarts a container); the message runs TASK_DELIVERY_LIMIT times,
    then is dead-lettered with reason `delivery_limit` in the log (before a quorum queue's own
    `x-delivery-limit` of 10 would drop it to its DLQ), and the pool keeps paying the orders
    that flow meanwhile."""
    stack, shop = crash_target
    limit = 3
    name = "payments-pool"
    original = stack.processes[name]
    crashing = replace(
        original,
        argv=[original.argv[0], "-m", "tests.support.crash_pool", *original.argv[3:]],
        env={
            **original.env,
            "TASK_DELIVERY_LIMIT": str(limit),
            "DELIVERY_COUNTS_DIR": str(tmp_path),
        },
    )
    exits: list[int] = []
    poison = OutgoingTask(CRASH_TASK, {}, id=f"crash-{uuid.uuid4().hex[:8]}")
    log = stack.logs / f"{name}.log"

    async def supervise() -> None:
        while True:
            popen = stack.running.get(name)
            if popen is not None and popen.poll() is not None:
                exits.append(popen.returncode)
                stack.running.pop(name)
                stack.start(name)
            await asyncio.sleep(0.2)

    async def crash_loop() -> set[str]:
        connection = await aio_pika.connect(stack.env["RABBITMQ_URL"])
        try:
            channel = await connection.channel(publisher_confirms=True)
            body = orjson.dumps([[], {}, EMBED])
            await publish(channel, QueueName.PAYMENTS, poison, body, "application/json")
        finally:
            await connection.close()
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if "delivery_limit" in log.read_text() and poison.id in log.read_text():
                break
            await asyncio.sleep(0.5)
        return {poison.id}

    stack.stop(name)
    stack.processes[name] = crashing
    stack.start(name)
    supervisor = asyncio.create_task(supervise())
    try:
        row = "k. a message that kills its worker" + ("" if queues == "classic" else " (quorum)")
        await scenario(row, stack, shop, crash_loop)
    finally:
        supervisor.cancel()
        await asyncio.gather(supervisor, return_exceptions=True)
        stack.stop(name)
        stack.processes[name] = original
        stack.start(name)
        stack.wait_healthy()

    assert exits == [CRASH_EXIT_CODE] * limit, exits
    dead = await take_dead_letters(stack.env["RABBITMQ_URL"], {poison.id})
    assert (dead[poison.id]["reason"], dead[poison.id]["queue"]) == ("rejected", "payments")
    said = [line for line in log.read_text().splitlines() if poison.id in line]
    assert any("poison message dead-lettered: delivery_limit" in line for line in said), said
