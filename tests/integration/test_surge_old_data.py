"""`make surge`'s look at old data reads the real notifications database and broker: the
subscribers the run does not import, and the messages already queued."""

from __future__ import annotations

import subprocess
import sys

import aio_pika
import asyncpg
import pytest

from bench.surge.old_data import measure
from devtools.harness import stack as harness
from devtools.harness.stack import PG_SERVER, ROOT, SLOT, fresh_vhost, rabbitmqctl
from shared.infra.settings import Settings
from shared.messaging.publisher import declare_topology

PREFIX = f"doorbuster_olddata{SLOT}"
VHOST = f"doorbuster-olddata{SLOT}"
RABBITMQ_URL = f"amqp://guest:guest@127.0.0.1:5672/{VHOST}"
DATABASE_URL = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{PREFIX}"


@pytest.fixture(scope="module")
def settings():
    fresh_vhost(VHOST)
    env = {**harness.test_env(), "DATABASE_URL": DATABASE_URL, "RABBITMQ_URL": RABBITMQ_URL}
    subprocess.run([sys.executable, "-m", "shared.infra.migrate"], cwd=ROOT, env=env, check=True)
    yield Settings(database_url=DATABASE_URL, rabbitmq_url=RABBITMQ_URL)
    rabbitmqctl("delete_vhost", VHOST)


async def test_it_counts_the_subscribers_the_run_does_not_import_and_the_backlog(settings):
    connection = await asyncpg.connect(f"{PG_SERVER}/{PREFIX}_notifications")
    await connection.execute("TRUNCATE subscribers CASCADE")
    addresses = [f"fan-{n}@surge.example.com" for n in range(30)]  # an earlier, bigger run
    addresses += [f"s{n}@example.com" for n in range(7)] + ["fan-x@surge.example.com"]
    await connection.executemany(
        "INSERT INTO subscribers (email) VALUES ($1)", [(a,) for a in addresses]
    )
    await connection.execute(
        "UPDATE subscribers SET status = 'unsubscribed' WHERE email = 's0@example.com'"
    )
    await connection.close()
    broker = await aio_pika.connect(RABBITMQ_URL)
    channel = await broker.channel()
    await declare_topology(channel)
    for _ in range(4):
        await channel.default_exchange.publish(
            aio_pika.Message(b"{}"), routing_key="notifications.bulk"
        )
    await broker.close()

    found = await measure(settings, importing=20)
    # fan-20..29 (beyond this run's 20), 6 subscribed others, fan-x: 17.
    assert found.other_subscribers == 17
    assert found.queued == 4


async def test_what_cannot_be_read_is_unknown_not_an_error():
    nowhere = Settings(
        database_url="postgresql+asyncpg://postgres@127.0.0.1:1/none",
        rabbitmq_url="amqp://guest:guest@127.0.0.1:1/",
    )
    found = await measure(nowhere, importing=2000)
    assert found.other_subscribers is None and found.queued is None
