"""The `doorbuster` CLI against the real broker and a real payments pool (its own vhost).

A `payments.charge` with no `order_id` is what a bad deploy would publish: the task shell
rejects it, RabbitMQ dead-letters it to `payments.dlq`, and the CLI lists, shows and redrives
it. The same worker's /metrics must have counted it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from devtools.harness.metrics import sample, scrape
from devtools.harness.stack import ROOT, SLOT, rabbitmqctl
from shared.messages.orders import ChargeOrder, ReserveStock
from shared.messaging.publisher import Publisher
from shared.messaging.wire import OutgoingTask
from tests.support.isolated import fresh_vhost
from tests.support.ops import doorbuster, doorbuster_json, eventually, wait_for_management
from tests.support.sentry_stub import SentryStub

VHOST = f"doorbuster-ops{SLOT or ''}"
URL = f"amqp://guest:guest@127.0.0.1:5672/{VHOST}"
METRICS_PORT = 19190 + SLOT * 100
METRICS = f"http://127.0.0.1:{METRICS_PORT}"


@pytest.fixture(scope="module")
def sentry() -> SentryStub:
    stub = SentryStub()
    yield stub
    stub.close()


@pytest.fixture(scope="module")
def env(sentry: SentryStub) -> dict[str, str]:
    if not wait_for_management():
        pytest.skip("the RabbitMQ management API does not answer (make rabbitmq-plugins)")
    fresh_vhost(VHOST)
    yield {
        "PATH": "/usr/bin:/bin",
        "RABBITMQ_URL": URL,
        "RABBITMQ_MANAGEMENT_URL": "http://guest:guest@127.0.0.1:15672",
        # An invalid payload is rejected before the task touches its database.
        "DATABASE_URL": "postgresql+asyncpg://postgres@127.0.0.1:5432/doorbuster_ops_unused",
        "PYTHONUNBUFFERED": "1",
        "SENTRY_DSN": sentry.dsn,
    }
    rabbitmqctl("delete_vhost", VHOST)


@pytest.fixture(scope="module")
def payments_worker(env: dict[str, str], tmp_path_factory) -> subprocess.Popen[bytes]:
    log = open(tmp_path_factory.mktemp("ops") / "payments.log", "wb")  # noqa: SIM115
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "workers",
            "payments",
            "-c",
            "4",
            "--metrics-port",
            str(METRICS_PORT),
            "--name",
            f"payments-ops-test@{SLOT}",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=log,
    )
    try:
        eventually(lambda: _ready(worker), bool, timeout=30)
        yield worker
    finally:
        worker.terminate()
        worker.wait(20)
        log.close()


def _ready(worker: subprocess.Popen[bytes]) -> bool:
    assert worker.poll() is None, "the payments worker exited"
    try:
        return httpx.get(f"{METRICS}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


async def publish(*tasks: OutgoingTask) -> None:
    publisher = Publisher(URL)
    await publisher.connect()
    try:
        await publisher.publish_many(tasks)
    finally:
        await publisher.close()


def dead_letters(env: dict[str, str]) -> list[dict]:
    return doorbuster_json(env, "dlq", "list", "payments")


async def test_a_rejected_charge_is_listed_shown_and_redriven(env, payments_worker):
    # An empty dead-letter queue says so, rather than print a lone header.
    assert doorbuster(env, "dlq", "list", "payments").stdout.strip() == (
        "no dead letters in payments.dlq"
    )
    assert dead_letters(env) == []

    bad = OutgoingTask(ChargeOrder.name, {"amount": 500}, correlation_id="corr-ops-dlq")
    await publish(bad)

    [letter] = eventually(lambda: dead_letters(env), lambda found: len(found) == 1)
    assert letter["task_id"] == bad.id and letter["task"] == "payments.charge"
    assert (letter["reason"], letter["from_queue"], letter["deaths"]) == ("rejected", "payments", 1)
    table = doorbuster(env, "dlq", "list", "payments").stdout
    assert bad.id in table and "rejected" in table

    shown = doorbuster_json(env, "dlq", "show", "payments.dlq", bad.id)
    assert shown["body"][1] == {"amount": 500}
    assert shown["headers"]["doorbuster_correlation_id"] == "corr-ops-dlq"
    assert shown["headers"]["x-death"][0]["routing-keys"] == ["payments"]

    moved = doorbuster_json(env, "dlq", "redrive", "payments", "--id", bad.id)
    assert moved == [{"task": "payments.charge", "task_id": bad.id, "to_queue": "payments"}]

    # Still invalid: the worker rejects it again, and it is back, marked as redriven once.
    again = eventually(lambda: dead_letters(env), lambda found: len(found) == 1)
    assert again[0]["task_id"] == bad.id
    assert (
        doorbuster_json(env, "dlq", "show", "payments", "1")["headers"]["doorbuster_redriven"] == 1
    )

    metrics = scrape(f"{METRICS}/metrics")
    labels = {"queue": "payments", "task": "payments.charge"}
    assert sample(metrics, "doorbuster_task_dead_letters_total", reason="rejected", **labels) == 2
    assert sample(metrics, "doorbuster_tasks_total", outcome="rejected", **labels) == 2
    assert sample(metrics, "doorbuster_task_wait_seconds_count", **labels) == 2
    assert sample(metrics, "doorbuster_task_run_seconds_count", **labels) == 2

    assert doorbuster_json(env, "dlq", "redrive", "payments", "--limit", "0") == []
    assert doorbuster(env, "dlq", "list", "nope", check=False).returncode == 1


async def test_queues_show_depth_consumers_and_the_oldest_message_age(env, payments_worker):
    # No orders pool runs on this vhost: the reservation waits in `orders`.
    await publish(OutgoingTask(ReserveStock.name, {"order_id": "ord_ops", "items": []}))
    time.sleep(1.1)

    rows = eventually(
        lambda: {row["queue"]: row for row in doorbuster_json(env, "queues")},
        lambda found: found["orders"]["ready"] == 1 and found["payments"]["consumers"] == 1,
    )
    assert rows["orders"]["oldest_age_s"] >= 1
    assert rows["orders"]["consumers"] == 0 and rows["orders"]["unacked"] == 0
    assert rows["payments"]["ready"] == 0 and rows["payments"]["oldest_age_s"] is None
    assert set(rows) == {"payments", "orders", "notifications.transactional", "notifications.bulk"}
    table = doorbuster(env, "queues").stdout.splitlines()
    assert table[0].split()[:3] == ["queue", "ready", "unacked"] and len(table) == 5


def test_pools_report_and_resize_the_running_worker(env, payments_worker):
    def payments() -> dict:
        return next(row for row in doorbuster_json(env, "pools") if row["pool"] == "payments")

    before = payments()
    assert (before["workers"], before["concurrency"], before["queue"]) == (1, 4, "payments")
    assert before["nodes"][0]["implementation"] == "workers.threads:GrowableThreadPool"

    grown = doorbuster(env, "pool", "grow", "payments", "3")
    assert "pool will grow" in grown.stdout
    assert payments()["concurrency"] == 7
    doorbuster(env, "pool", "shrink", "payments", "2")
    assert payments()["concurrency"] == 5

    others = [row for row in doorbuster_json(env, "pools") if row["pool"] != "payments"]
    assert {row["workers"] for row in others} == {0}
    missing = doorbuster(env, "pool", "grow", "bulk", "1", check=False)
    assert missing.returncode == 1 and "no worker of pool bulk" in missing.stderr


def test_the_worker_serves_its_probes(payments_worker):
    assert httpx.get(f"{METRICS}/healthz").status_code == 200
    assert httpx.get(f"{METRICS}/readyz").status_code == 200
    assert httpx.get(f"{METRICS}/nope").status_code == 404


def test_the_console_script_is_installed():
    assert (Path(sys.executable).parent / "doorbuster").exists()


async def test_a_failing_task_reaches_sentry_tagged_with_its_order(env, payments_worker, sentry):
    # A well-formed charge, but this worker's database does not exist: the task fails for good.
    await publish(OutgoingTask(ChargeOrder.name, {"order_id": "ord_sentry"}))

    tagged = eventually(
        lambda: [e for e in sentry.events if e.get("tags", {}).get("order_id") == "ord_sentry"],
        bool,
        timeout=30,
    )
    event = tagged[0]
    assert event["tags"]["component"] == "worker"
    assert "celery" in json.dumps(event.get("sdk", {}).get("integrations", []))

    metrics = scrape(f"{METRICS}/metrics")
    labels = {"queue": "payments", "task": "payments.charge"}
    assert sample(metrics, "doorbuster_task_dead_letters_total", reason="failed", **labels) == 1
