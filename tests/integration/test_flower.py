"""`make flower` starts Flower against the pools unchanged: the `workers.monitor` app loads, and
Flower answers its health check and lists the registered tasks' workers page."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from devtools.harness.stack import ROOT, SLOT, rabbitmqctl
from tests.support.ops import eventually

PORT = 15555 + SLOT * 100
VHOST = f"doorbuster-flower{SLOT or ''}"


@pytest.fixture
def vhost():
    rabbitmqctl("delete_vhost", VHOST)
    assert rabbitmqctl("add_vhost", VHOST).returncode == 0
    rabbitmqctl("set_permissions", "-p", VHOST, "guest", ".*", ".*", ".*")
    yield VHOST
    rabbitmqctl("delete_vhost", VHOST)


def test_flower_starts_on_the_monitor_app(tmp_path: Path, vhost: str):
    pytest.importorskip("flower", reason="the `ops` extra (flower) is not installed")
    log = open(tmp_path / "flower.log", "wb")  # noqa: SIM115
    flower = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "workers.monitor",
            "flower",
            f"--port={PORT}",
            "--address=127.0.0.1",
        ],
        cwd=ROOT,
        stdout=log,
        stderr=log,
        env={
            "PATH": "/usr/bin:/bin",
            "RABBITMQ_URL": f"amqp://guest:guest@127.0.0.1:5672/{vhost}",
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
        assert httpx.get(f"http://127.0.0.1:{PORT}/workers", timeout=5).status_code == 200
    finally:
        flower.terminate()
        flower.wait(20)
        log.close()
