"""The autoscaler against the real broker (its own vhost): a backlog in the payments queue
starts a real payments worker by KEDA's rule, the drained queue stops it after the scale-in
window, and SIGTERM to the autoscaler stops the workers it runs.

The backlog is charges without an `order_id` (what a bad deploy would publish): the worker
rejects them before touching any database, so they drain at once into `payments.dlq`.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from devtools.harness.stack import ROOT, SLOT, rabbitmqctl
from shared.messages.orders import ChargeOrder
from shared.messaging.publisher import Publisher
from shared.messaging.wire import OutgoingTask
from tests.support.isolated import fresh_vhost
from tests.support.ops import MANAGEMENT, eventually, wait_for_management

VHOST = f"doorbuster-autoscale{SLOT or ''}"
URL = f"amqp://guest:guest@127.0.0.1:5672/{VHOST}"
METRICS_BASE = 19140 + SLOT * 100
BACKLOG = 20  # ceil(20 / 29) = 1 worker wanted


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    if not wait_for_management():
        pytest.skip("the RabbitMQ management API does not answer (make rabbitmq-plugins)")
    fresh_vhost(VHOST)
    yield {
        "PATH": "/usr/bin:/bin",
        "RABBITMQ_URL": URL,
        "RABBITMQ_MANAGEMENT_URL": "http://guest:guest@127.0.0.1:15672",
        "DATABASE_URL": "postgresql+asyncpg://postgres@127.0.0.1:5432/doorbuster_autoscale_unused",
        "PYTHONUNBUFFERED": "1",
    }
    rabbitmqctl("delete_vhost", VHOST)


def autoscale(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "ops.autoscale", "--pools", "payments"]
    argv += ["--metrics-base", str(METRICS_BASE), "--polling", "1", *args]
    with log.open("wb") as out:
        return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=out)


def events(log: Path) -> list[dict[str, Any]]:
    found = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("process") == "autoscale":
            found.append(event)
    return found


def decisions(log: Path, action: str) -> list[dict[str, Any]]:
    return [e for e in events(log) if e["event"] == "autoscale decision" and e["action"] == action]


def payments_queue() -> dict[str, Any]:
    response = httpx.get(
        f"{MANAGEMENT}/api/queues/{VHOST}/payments", auth=("guest", "guest"), timeout=5
    )
    response.raise_for_status()
    return response.json()


async def publish_backlog(count: int) -> None:
    publisher = Publisher(URL)
    await publisher.connect()  # declares the topology, so the queue exists before any worker
    try:
        await publisher.publish_many(
            OutgoingTask(ChargeOrder.name, {"amount": 500}, correlation_id=f"corr-autoscale-{i}")
            for i in range(count)
        )
    finally:
        await publisher.close()


def stop(process: subprocess.Popen[bytes]) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    return process.wait(40)


async def test_a_backlog_starts_a_worker_and_the_drained_queue_stops_it(env, tmp_path):
    await publish_backlog(BACKLOG)
    # The management API refreshes its numbers every 5 s: wait until it shows the backlog.
    eventually(payments_queue, lambda q: q.get("messages") == BACKLOG, timeout=15)
    log = tmp_path / "autoscale.log"
    process = autoscale(env, log, "--limits", "payments=0:2", "--scale-in-window", "5")
    try:
        # Timeouts allow for a busy 2-core machine: a worker took 13 s to boot at 99 % CPU.
        [out] = eventually(lambda: decisions(log, "scale out"), bool, timeout=30)
        assert (out["messages"], out["per_worker"], out["current"], out["wanted"]) == (
            BACKLOG,
            29,
            0,
            1,
        )
        assert out["started"] == ["payments-pool-1"] and out["workers"] == 1
        # The worker consumes the queue and rejects every charge into the dead-letter queue.
        eventually(payments_queue, lambda q: q.get("consumers") == 1, timeout=45)
        eventually(payments_queue, lambda q: q.get("messages") == 0, timeout=20)
        # Drained: after the 5 s window, the autoscaler stops the worker with a warm shutdown.
        [down] = eventually(lambda: decisions(log, "scale in"), bool, timeout=20)
        assert (down["messages"], down["current"], down["workers"]) == (0, 1, 0)
        assert down["stopped"] == ["payments-pool-1"]
        [exited] = eventually(
            lambda: [e for e in events(log) if e["event"] == "autoscale worker exited"],
            bool,
            timeout=20,
        )
        assert exited["stopped_by_autoscaler"] and exited["returncode"] == 0
        eventually(payments_queue, lambda q: q.get("consumers") == 0, timeout=10)
    finally:
        assert stop(process) == 0


def test_sigterm_stops_the_workers_it_runs(env, tmp_path):
    log = tmp_path / "autoscale.log"
    process = autoscale(env, log, "--limits", "payments=1:1")
    try:
        eventually(lambda: decisions(log, "scale out"), bool, timeout=30)
        eventually(payments_queue, lambda q: q.get("consumers") == 1, timeout=45)
        children = psutil.Process(process.pid).children()
        assert len(children) == 1
    finally:
        assert stop(process) == 0
    assert not [child for child in children if child.is_running() and child.status() != "zombie"]
    assert [e["event"] for e in events(log)][-2:] == [
        "autoscale stopping its workers",
        "autoscale stopped",
    ]
    eventually(payments_queue, lambda q: q.get("consumers") == 0, timeout=10)
