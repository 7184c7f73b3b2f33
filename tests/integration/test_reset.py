"""`make reset` (devtools/reset.py) against real PostgreSQL and RabbitMQ: the three databases
emptied with their schema kept, the project's queues purged, the emulator's state file and the
sink's Maildir emptied; and nothing touched where it refuses (production, a running stack)."""

from __future__ import annotations

import asyncio
import mailbox
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import aio_pika
import asyncpg
import pytest

from devtools.harness.stack import PG_SERVER, ROOT, SLOT, fresh_vhost, rabbitmqctl
from devtools.plan import Ports
from devtools.reset import project_queues, refusal
from devtools.up import ports_at
from shared.infra.settings import Settings
from shared.messaging.publisher import declare_topology

PREFIX = f"doorbuster_reset{SLOT}"
VHOST = f"doorbuster-reset{SLOT}"
RABBITMQ_URL = f"amqp://guest:guest@127.0.0.1:5672/{VHOST}"
# `make up`'s ports moved by this offset: 9001.., 10100.., 13111.., 2025.., which no other test
# and no default `make up` uses, below the ephemeral range (an outgoing connection may hold a
# port there when the refusal test binds one).
OFFSET = 1000 + 10 * SLOT
PORTS = ports_at(OFFSET)
ROWS = {
    "orders": "SELECT count(*) FROM orders",
    "inventory": "SELECT count(*) FROM products",
    "notifications": "SELECT count(*) FROM subscribers",
}


def env(**extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DOORBUSTER_ENV": "development",
        "DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:5432/{PREFIX}",
        "RABBITMQ_URL": RABBITMQ_URL,
        "UP_PORT_OFFSET": str(OFFSET),
        **extra,
    }


async def fetch(service: str, query: str) -> int:
    connection = await asyncpg.connect(f"{PG_SERVER}/{PREFIX}_{service}")
    try:
        return await connection.fetchval(query)
    finally:
        await connection.close()


async def seed() -> None:
    """An order, a product and subscribers in the databases, messages in two queues."""
    inventory = await asyncpg.connect(f"{PG_SERVER}/{PREFIX}_inventory")
    await inventory.execute(
        "INSERT INTO products (sku, name, price, currency, stock) VALUES ('TV-55', 'TV', 100, "
        "'usd', 5) ON CONFLICT DO NOTHING"
    )
    await inventory.close()
    notifications = await asyncpg.connect(f"{PG_SERVER}/{PREFIX}_notifications")
    await notifications.executemany(
        "INSERT INTO subscribers (email) VALUES ($1) ON CONFLICT DO NOTHING",
        [(f"s{n}@example.com",) for n in range(50)],
    )
    await notifications.close()
    orders = await asyncpg.connect(f"{PG_SERVER}/{PREFIX}_orders")
    await orders.execute(
        "INSERT INTO orders (id, status, customer_id, customer_email, payment_method, items) "
        "VALUES ('ord_reset', 'pending', 'cus_1', 'ann@example.com', 'pm_card_visa', '[]') "
        "ON CONFLICT DO NOTHING"
    )
    await orders.close()
    connection = await aio_pika.connect(RABBITMQ_URL)
    channel = await connection.channel()
    await declare_topology(channel)
    for queue in ("notifications.bulk", "payments.dlq"):
        for _ in range(3):
            await channel.default_exchange.publish(aio_pika.Message(b"{}"), routing_key=queue)
    await connection.close()


async def queue_depths() -> dict[str, int]:
    connection = await aio_pika.connect(RABBITMQ_URL)
    channel = await connection.channel()
    depths = {}
    for name in project_queues():
        queue = await channel.declare_queue(name, passive=True)
        depths[name] = queue.declaration_result.message_count
    await connection.close()
    return depths


@pytest.fixture(scope="module")
def local_stack_data() -> Iterator[None]:
    """Migrated databases and a vhost of this test's own (it empties them)."""
    fresh_vhost(VHOST)
    subprocess.run([sys.executable, "-m", "shared.infra.migrate"], cwd=ROOT, env=env(), check=True)
    yield
    rabbitmqctl("delete_vhost", VHOST)


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    state = tmp_path / "stripe-emulator.json"
    state.write_text('{"payment_intents": []}')
    maildir = tmp_path / "mail"
    box = mailbox.Maildir(maildir, create=True)
    for n in range(4):
        mail = EmailMessage()
        mail["Subject"] = f"mail {n}"
        box.add(mail)
    return state, maildir


def run_reset(state: Path, maildir: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "devtools.reset", "--state-file", str(state), "--maildir", maildir],
        cwd=ROOT,
        env=env(**extra),
        capture_output=True,
        text=True,
        timeout=120,
    )


async def everything_seeded(state: Path, maildir: Path) -> None:
    for service, query in ROWS.items():
        assert await fetch(service, query) >= 1, service
    depths = await queue_depths()
    assert depths["notifications.bulk"] >= 3 and depths["payments.dlq"] >= 3
    assert state.exists() and len(mailbox.Maildir(maildir)) == 4


def test_reset_empties_databases_queues_emulator_state_and_sink(local_stack_data, files):
    state, maildir = files
    asyncio.run(seed())
    asyncio.run(everything_seeded(state, maildir))
    queued = sum(asyncio.run(queue_depths()).values())
    done = run_reset(state, maildir)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("==> reset: databases emptied"), done.stdout
    assert f"{queued} queued messages purged" in done.stdout, done.stdout
    assert "4 mails removed" in done.stdout

    async def emptied() -> None:
        for service, query in ROWS.items():
            assert await fetch(service, query) == 0, service
            # The schema stays, with Alembic's record of it: no migration runs again.
            assert await fetch(service, "SELECT count(*) FROM alembic_version") == 1
        assert set((await queue_depths()).values()) == {0}

    asyncio.run(emptied())
    assert not state.exists()
    assert maildir.is_dir() and len(mailbox.Maildir(maildir)) == 0
    again = run_reset(state, maildir)  # on empty data: nothing to do, no error
    assert again.returncode == 0 and "0 queued messages" in again.stdout, again.stderr


def test_reset_refuses_in_production_and_changes_nothing(local_stack_data, files):
    state, maildir = files
    asyncio.run(seed())
    refused = run_reset(state, maildir, DOORBUSTER_ENV="production")
    assert refused.returncode != 0
    assert "make reset refused" in refused.stderr and "production" in refused.stderr
    asyncio.run(everything_seeded(state, maildir))


def test_reset_refuses_while_the_stack_runs(local_stack_data, files):
    state, maildir = files
    asyncio.run(seed())
    with socket.create_server(("127.0.0.1", PORTS.orders)):  # `make up`'s orders API
        refused = run_reset(state, maildir)
    assert refused.returncode != 0
    assert f"orders :{PORTS.orders}" in refused.stderr and "stop `make up`" in refused.stderr
    asyncio.run(everything_seeded(state, maildir))


def test_reset_refuses_a_broker_or_database_elsewhere():
    ports = Ports()
    remote_db = Settings(database_url="postgresql+asyncpg://app@db.internal:5432/doorbuster")
    assert "the orders database (db.internal)" in (refusal(remote_db, ports) or "")
    remote_broker = Settings(rabbitmq_url="amqp://app:secret@rabbit.internal:5672/")
    assert "RABBITMQ_URL (rabbit.internal)" in (refusal(remote_broker, ports) or "")
    production = Settings(doorbuster_env="test")
    production.doorbuster_env = "production"
    assert "DOORBUSTER_ENV=production" in (refusal(production, ports) or "")


def test_reset_of_a_stack_never_migrated_is_not_an_error(local_stack_data, tmp_path):
    never = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{PREFIX}_never"
    done = run_reset(tmp_path / "state.json", tmp_path / "mail", DATABASE_URL=never)
    assert done.returncode == 0, done.stderr
    assert f"{PREFIX}_never_orders 0" in done.stdout
