"""`make flower` (`python -m ops.flower`): Flower on the pools' app, listening on 127.0.0.1 only,
behind basic auth from FLOWER_BASIC_AUTH, and its broker tab reads this project's vhost only."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import httpx
import psutil
import pytest

from devtools.harness.stack import ROOT, SLOT, rabbitmqctl
from tests.support.ops import MANAGEMENT, eventually, wait_for_management

PORT = 15555 + SLOT * 100
VHOST = f"doorbuster-flower{SLOT or ''}"
AUTH = ("ann", "flower-test-secret")
API = f"http://guest:guest@{MANAGEMENT.removeprefix('http://')}/api/"


@pytest.fixture
def vhost():
    rabbitmqctl("delete_vhost", VHOST)
    assert rabbitmqctl("add_vhost", VHOST).returncode == 0
    rabbitmqctl("set_permissions", "-p", VHOST, "guest", ".*", ".*", ".*")
    yield VHOST
    rabbitmqctl("delete_vhost", VHOST)


def test_flower_listens_on_loopback_behind_basic_auth(tmp_path: Path, vhost: str):
    pytest.importorskip("flower", reason="the `ops` extra (flower) is not installed")
    log = open(tmp_path / "flower.log", "wb")  # noqa: SIM115
    flower = subprocess.Popen(
        [sys.executable, "-m", "ops.flower", f"--port={PORT}"],
        cwd=ROOT,
        stdout=log,
        stderr=log,
        env={
            "PATH": "/usr/bin:/bin",
            "RABBITMQ_URL": f"amqp://guest:guest@127.0.0.1:5672/{vhost}",
            "FLOWER_BASIC_AUTH": ":".join(AUTH),
        },
    )
    try:

        def health() -> str:
            assert flower.poll() is None, (tmp_path / "flower.log").read_text()
            try:
                return httpx.get(f"http://127.0.0.1:{PORT}/healthcheck", timeout=2).text
            except httpx.HTTPError:
                return ""

        assert eventually(health, lambda text: text == "OK", timeout=40) == "OK"
        workers = f"http://127.0.0.1:{PORT}/workers"
        assert httpx.get(workers, timeout=5).status_code == 401
        assert httpx.get(workers, auth=("ann", "wrong"), timeout=5).status_code == 401
        assert httpx.get(workers, auth=AUTH, timeout=5).status_code == 200
        listening = {
            conn.laddr.ip
            for conn in psutil.Process(flower.pid).net_connections("tcp")
            if conn.status == psutil.CONN_LISTEN and conn.laddr.port == PORT
        }
        assert listening == {"127.0.0.1"}
        assert AUTH[1] not in " ".join(psutil.Process(flower.pid).cmdline())
    finally:
        flower.terminate()
        flower.wait(20)
        log.close()
    assert AUTH[1] not in (tmp_path / "flower.log").read_text()


def test_the_broker_tab_reads_only_the_vhost_flower_runs_on(vhost: str):
    pytest.importorskip("flower", reason="the `ops` extra (flower) is not installed")
    if not wait_for_management():
        pytest.skip("the RabbitMQ management API does not answer (make rabbitmq-management)")
    from flower.utils.broker import RabbitMQ

    from ops.flower import ProjectVhostRabbitMQ

    created = httpx.put(
        f"{MANAGEMENT}/api/queues/{vhost}/payments",
        json={"durable": False, "auto_delete": False},
        auth=("guest", "guest"),
    )
    assert created.is_success, created.text

    async def vhosts_listed(cls: type[RabbitMQ], broker_url: str) -> set[str]:
        return {queue["vhost"] for queue in await cls(broker_url, API).queues({"payments"})}

    default = "amqp://guest:guest@127.0.0.1:5672//"
    # Flower as shipped reads every vhost's `payments` for the default vhost; ours does not.
    assert vhost in asyncio.run(vhosts_listed(RabbitMQ, default))
    assert vhost not in asyncio.run(vhosts_listed(ProjectVhostRabbitMQ, default))
    ours = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    assert asyncio.run(vhosts_listed(ProjectVhostRabbitMQ, ours)) == {vhost}
