"""Contract: a message from our aio-pika publisher runs on a real Celery worker with the right
arguments, and a higher priority overtakes a backlog of lower priority on the same queue."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devtools.harness.stack import ROOT, SLOT, rabbitmqctl
from shared.messages.orders import ChargeOrder, RefundOrder
from shared.messaging.publisher import Publisher
from shared.messaging.topology import QueueName
from shared.messaging.wire import OutgoingTask

VHOST = f"doorbuster-probe{SLOT or ''}"
URL = f"amqp://guest:guest@127.0.0.1:5672/{VHOST}"
BACKLOG = 300


@pytest.fixture
def probe_vhost():
    rabbitmqctl("delete_vhost", VHOST)
    assert rabbitmqctl("add_vhost", VHOST).returncode == 0
    rabbitmqctl("set_permissions", "-p", VHOST, "guest", ".*", ".*", ".*")
    yield URL
    rabbitmqctl("delete_vhost", VHOST)


def start_probe_worker(output: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "tests.support.probe_app",
            "worker",
            f"--queues={QueueName.PAYMENTS.value}",
            "--concurrency=1",
            "--pool=threads",
            "--without-gossip",
            "--without-mingle",
            "--loglevel=WARNING",
        ],
        cwd=ROOT,
        env={"PROBE_BROKER_URL": URL, "PROBE_OUTPUT": str(output), "PATH": "/usr/bin:/bin"},
    )


def read_records(output: Path, count: int, timeout: float = 60) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if output.exists():
            lines = output.read_text().splitlines()
            if len(lines) >= count:
                return [json.loads(line) for line in lines]
        time.sleep(0.1)
    raise AssertionError(f"the probe worker ran fewer than {count} tasks in {timeout}s")


async def test_celery_runs_our_messages_and_priority_overtakes_a_backlog(probe_vhost, tmp_path):
    publisher = Publisher(probe_vhost)
    await publisher.connect()
    backlog = [OutgoingTask(RefundOrder.name, {"order_id": f"ord_low_{n}"}) for n in range(BACKLOG)]
    urgent = OutgoingTask(
        ChargeOrder.name, {"order_id": "ord_urgent"}, correlation_id="corr-contract"
    )
    await publisher.publish_many(backlog)
    await publisher.publish(urgent)  # published last, priority 9
    await publisher.close()

    output = tmp_path / "probe.jsonl"
    worker = start_probe_worker(output)
    try:
        records = read_records(output, BACKLOG + 1)
    finally:
        worker.terminate()
        worker.wait(20)

    first = records[0]
    assert first["kwargs"] == {"order_id": "ord_urgent"}
    assert first["args"] == []
    assert first["id"] == urgent.id
    assert first["priority"] == 9
    assert first["correlation_id"] == "corr-contract"
    low = [record["kwargs"]["order_id"] for record in records[1:]]
    assert sorted(low) == sorted(task.kwargs["order_id"] for task in backlog)
    assert {record["priority"] for record in records[1:]} == {8}  # a refund's route
