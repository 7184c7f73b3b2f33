"""How a service or pool process starts: in production it refuses to run with any development
value (exit status 1, one clear line naming every offending variable); in development it
says, in its log, that it accepts the development keys."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from devtools.harness.stack import ROOT

SERVICES = ("orders", "inventory", "notifications")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def uvicorn(service: str) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", f"services.{service}.main:create_app", "--factory",
        "--host", "127.0.0.1", "--port", str(free_port()),
    ]  # fmt: skip


def environment(**overrides: str) -> dict[str, str]:
    # Nowhere to connect: what is tested happens before the first connection.
    base = {
        "RABBITMQ_URL": "amqp://guest:guest@127.0.0.1:9/",
        "DATABASE_URL": "postgresql+asyncpg://postgres@127.0.0.1:9/none",
        "PYTHONUNBUFFERED": "1",
    }
    return {**os.environ, **base, **overrides}


@pytest.mark.parametrize(
    ("service", "storefront", "admin"),
    [*((service, "", "") for service in SERVICES), ("orders", "sf-1", ""), ("orders", "", "ad-1")],
)
def test_production_without_keys_refuses_to_start(service, storefront, admin):
    env = environment(
        DOORBUSTER_ENV="production", STOREFRONT_API_KEYS=storefront, ADMIN_API_KEYS=admin
    )
    run = subprocess.run(
        uvicorn(service), cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 1
    [line] = [line for line in run.stderr.splitlines() if "refusing to start" in line]
    assert line.startswith("doorbuster: refusing to start: DOORBUSTER_ENV=production refuses")
    for variable in ("STRIPE_WEBHOOK_SECRET", "STRIPE_API_KEY", "STRIPE_API_BASE", "RABBITMQ_URL"):
        assert f"{variable} (" in line
    assert ("STOREFRONT_API_KEYS (unset)" in line) == (not storefront)
    assert ("ADMIN_API_KEYS (unset)" in line) == (not admin)
    assert "Traceback" not in run.stderr


PRODUCTION_READY = {
    "DOORBUSTER_ENV": "production",
    "STRIPE_WEBHOOK_SECRET": "whsec_live_1",
    "STRIPE_API_KEY": "sk_live_1",
    "STRIPE_API_BASE": "https://api.stripe.com",
    "RABBITMQ_URL": "amqp://orders:pw@127.0.0.1:9/",
    "STOREFRONT_API_KEYS": "sf-1",
    "ADMIN_API_KEYS": "ad-1",
    "SMTP_HOST": "127.0.0.1",
    "DKIM_PRIVATE_KEY_FILE": "/etc/doorbuster/dkim/private.pem",
    "UNSUBSCRIBE_SECRET": "4f1c0e7b9a2d8c3e5f6a7b8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f7081920",
    "UNSUBSCRIBE_BASE_URL": "https://mail.doorbuster.example",
}


@pytest.mark.parametrize("process", ["orders-api", "payments-pool", "bulk-pool"])
def test_production_with_the_dev_webhook_secret_refuses_to_start(process):
    """Everything else is production-ready: the one development value stops the process."""
    env = environment(**{**PRODUCTION_READY, "STRIPE_WEBHOOK_SECRET": "whsec_doorbuster_dev"})
    name, kind = process.split("-")
    argv = uvicorn(name) if kind == "api" else [sys.executable, "-m", "workers", name]
    run = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert run.stderr.strip().splitlines()[-1] == (
        "doorbuster: refusing to start: DOORBUSTER_ENV=production refuses development or "
        "unset values: STRIPE_WEBHOOK_SECRET (development value or unset)"
    )
    assert "Traceback" not in run.stderr


def test_production_refuses_to_start_the_bulk_pool_without_a_dkim_key():
    """No campaign mail goes out unsigned: without a key the bulk pool does not start."""
    env = environment(**PRODUCTION_READY)
    del env["DKIM_PRIVATE_KEY_FILE"]
    argv = [sys.executable, "-m", "workers", "bulk"]
    run = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert run.stderr.strip().splitlines()[-1] == (
        "doorbuster: refusing to start: DOORBUSTER_ENV=production refuses development or "
        "unset values: DKIM_PRIVATE_KEY_FILE (unset (or DKIM_PRIVATE_KEY): bulk mail is never "
        "sent unsigned)"
    )
    assert "Traceback" not in run.stderr


def test_development_mode_announces_the_dev_keys_at_start():
    env = environment(DOORBUSTER_ENV="development", STOREFRONT_API_KEYS="", ADMIN_API_KEYS="")
    process = subprocess.Popen(
        uvicorn("inventory"), cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline, seen = time.monotonic() + 30, ""
        while "development mode" not in seen and time.monotonic() < deadline:
            seen += process.stderr.readline()
        assert "development mode: no API keys configured" in seen
        assert "dev-storefront" in seen and "dev-admin" in seen
    finally:
        process.terminate()
        process.wait(15)


def test_an_api_that_cannot_bind_its_port_exits_while_its_broker_connection_is_still_opening():
    """uvicorn binds after the app's start-up; with the port taken it shuts the app down and
    exits. The publisher is then still opening its broker connection (here a broker that
    accepts and never answers): cancelled, aio-pika's robust connection would go on
    reconnecting and keep the process alive for ever (`make up` then hung, naming nothing)."""
    with socket.socket() as silent_broker, socket.socket() as taken:
        silent_broker.bind(("127.0.0.1", 0))
        silent_broker.listen()
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = environment(
            RABBITMQ_URL=f"amqp://guest:guest@127.0.0.1:{silent_broker.getsockname()[1]}/"
        )
        argv = [*uvicorn("inventory")[:-1], str(port)]
        started = time.monotonic()
        run = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        seconds = time.monotonic() - started
    assert run.returncode == 3, run.stderr[-2000:]
    assert "address already in use" in run.stderr
    assert "Application shutdown complete" in run.stderr
    assert seconds < 30, seconds
