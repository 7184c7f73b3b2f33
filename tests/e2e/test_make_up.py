"""`make up` as a developer runs it (`python -m devtools.up`, on ports, databases and a vhost of
its own): one line says when every process answers its probe, with the URLs, and a process
that cannot start is named in one line."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from devtools.harness.stack import ROOT, SLOT, Site, drop_test_databases, fresh_vhost, rabbitmqctl
from devtools.up import ports_at
from workers.pools import POOLS, Pool

# Below the ephemeral range (32768-60999 here): a port there can be an outgoing connection's at
# the moment an API binds it (seen: "address already in use" for the inventory API, then no
# ready line). 10001.., 11100.., 14111.. and 3025.. clear every other test's ports.
OFFSET = 2000 + SLOT * 100
SITE = Site(vhost=f"doorbuster-up{SLOT or ''}", db_prefix=f"doorbuster_up{SLOT or ''}")


@pytest.fixture
def up_env() -> Iterator[dict[str, str]]:
    fresh_vhost(SITE.vhost)
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("STRIPE_API_BASE", "SMTP_HOST", "SMTP_PORT", "POOLS")
    }
    env |= {
        "UP_PORT_OFFSET": str(OFFSET),
        "RABBITMQ_URL": f"amqp://guest:guest@127.0.0.1:5672/{SITE.vhost}",
        "DATABASE_URL": f"{SITE.database_url}/{SITE.db_prefix}",
        "PYTHONUNBUFFERED": "1",
    }
    yield env
    rabbitmqctl("delete_vhost", SITE.vhost)
    asyncio.run(drop_test_databases(SITE))


@contextlib.contextmanager
def running_until(
    env: dict[str, str], marker: str, timeout: float = 150
) -> Iterator[tuple[str, list[str]]]:
    """Start `make up`; give the first line containing `marker`, and every line so far; then
    stop it with Ctrl-C."""
    up = subprocess.Popen(
        [sys.executable, "-m", "devtools.up"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    try:
        assert up.stdout is not None
        for line in up.stdout:
            lines.append(line)
            if marker in line:
                yield line, lines
                return
            assert time.monotonic() < deadline, "".join(lines[-40:])
        raise AssertionError(f"make up exited without {marker!r}:\n{''.join(lines[-40:])}")
    finally:
        up.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            up.wait(40)
        except subprocess.TimeoutExpired:
            os.killpg(up.pid, signal.SIGKILL)
            up.wait(10)


def test_make_up_says_once_when_every_process_is_ready(up_env: dict[str, str]):
    at = ports_at(OFFSET)
    with running_until(up_env, "==> ") as (line, lines):
        assert line.startswith("==> Doorbuster is ready ("), "".join(lines[-40:])
        assert sum("==> " in seen for seen in lines) == 1
        for port in (at.orders, at.inventory, at.notifications):
            assert f"http://127.0.0.1:{port}/docs" in line
        # Ready means ready: every API and every pool answers its readiness probe already.
        for port in (at.orders, at.inventory, at.notifications):
            assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200
        for pool in POOLS.values():
            probe = f"http://127.0.0.1:{at.metrics + pool.metrics_offset}/readyz"
            assert httpx.get(probe, timeout=5).status_code == 200


def test_make_up_names_the_process_that_did_not_start(up_env: dict[str, str]):
    # The emulator refuses a failure rate above 1 at start, and exits.
    with running_until({**up_env, "STRIPE_EMULATOR_FAILURE_RATE": "2"}, "==> ") as (line, lines):
        pass
    assert "==> make up: stripe did not start (exited with code 1)" in line, "".join(lines)
    assert not any("Doorbuster is ready" in seen for seen in lines)


def answers_ready(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_make_up_with_the_autoscaler_is_ready_when_its_minimum_workers_are(up_env):
    at = ports_at(OFFSET)
    env = {
        **up_env,
        "AUTOSCALE": "1",
        "AUTOSCALE_ARGS": "--limits 'payments=1:2 orders=1:1 notifications=1:1 bulk=0:1'",
    }
    probes = {
        pool: f"http://127.0.0.1:{at.metrics + POOLS[pool].metrics_offset}/readyz" for pool in Pool
    }
    with running_until(env, "==> ") as (line, lines):
        assert line.startswith("==> Doorbuster is ready ("), "".join(lines[-40:])
        # No fixed pool processes: the autoscaler started each pool's minimum (bulk's is 0).
        assert not any(" payments-pool " in seen for seen in lines)
        for pool in (Pool.PAYMENTS, Pool.ORDERS, Pool.NOTIFICATIONS):
            assert answers_ready(probes[pool]), pool
        assert not answers_ready(probes[Pool.BULK])
        decisions = [seen for seen in lines if '"event": "autoscale decision"' in seen]
        assert any('"pool": "payments"' in seen and '"workers": 1' in seen for seen in decisions)
    # Ctrl-C stopped the autoscaler and every worker it had started.
    for pool in (Pool.PAYMENTS, Pool.ORDERS, Pool.NOTIFICATIONS):
        assert not answers_ready(probes[pool]), pool


def test_make_up_names_the_api_whose_port_is_taken_and_exits_at_once(up_env: dict[str, str]):
    # Another program (not an API: it answers nothing) already listens on the inventory API's
    # port. Before, the inventory API started, failed to bind, and hung in its shutdown; `make
    # up` waited for it and never said why.
    at = ports_at(OFFSET)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", at.inventory))
        taken.listen()
        started = time.monotonic()
        up = subprocess.run(
            [sys.executable, "-m", "devtools.up"],
            cwd=ROOT,
            env=up_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        seconds = time.monotonic() - started
    assert up.returncode == 1, up.stdout[-3000:] + up.stderr[-3000:]
    [line] = [line for line in up.stderr.splitlines() if line.startswith("==> ")]
    assert line.startswith(
        f"==> make up: inventory-api did not start: port {at.inventory} is already in use by "
    ), up.stderr
    assert f"(pid {os.getpid()})" in line  # this test's process holds it
    assert "UP_PORT_OFFSET" in up.stderr
    # Nothing was started, so nothing is left running and nothing says ready.
    assert "Doorbuster is ready" not in up.stdout
    assert " started (pid=" not in up.stdout
    assert seconds < 30, seconds
