"""Published outbox rows are deleted once older than the retention, on a real PostgreSQL:
never an unpublished row however old, never a published one younger than the retention, and
a pass reads a bounded number of rows however many the retention keeps."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import MetaData

from shared.infra.db import Database
from shared.messaging.outbox import Outbox, Relay, outbox_table
from shared.messaging.publisher import Publisher
from tests.support.scratch_db import scratch_database

metadata = MetaData()
OUTBOX = Outbox(outbox_table(metadata))
DAY = timedelta(days=1)


@pytest.fixture
async def db() -> AsyncIterator[Database]:
    async with scratch_database("prune", metadata) as db:
        yield db


async def row(db: Database, published_ago: str | None, created_ago: str = "2 days") -> str:
    """An outbox row created `created_ago` and published `published_ago` (None: unpublished),
    both PostgreSQL intervals; returns its task id."""
    task_id = str(uuid.uuid4())
    await db.fetch_alone(
        "INSERT INTO outbox (task_id, task_name, kwargs, created_at, published_at)"
        " VALUES ($1, 'payments.charge', '{}'::jsonb, now() - $2::text::interval,"
        " now() - $3::text::interval)",
        task_id,
        created_ago,
        published_ago,
    )
    return task_id


async def left(db: Database) -> list[str]:
    return [r["task_id"] for r in await db.fetch_alone("SELECT task_id FROM outbox ORDER BY id")]


async def test_only_published_rows_older_than_the_retention_go(db: Database):
    old_published = await row(db, published_ago="25 hours")
    stuck = await row(db, published_ago=None, created_ago="3 days")
    just_published = await row(db, published_ago="23 hours")
    young = await row(db, published_ago="1 second", created_ago="2 seconds")
    unpublished = await row(db, published_ago=None, created_ago="1 second")

    assert await OUTBOX.prune_once(db, DAY) == 1
    assert await left(db) == [stuck, just_published, young, unpublished]
    assert await OUTBOX.prune_once(db, DAY) == 0
    assert old_published not in await left(db)


async def test_a_pass_reads_only_the_oldest_rows_and_the_relay_takes_them_in_batches(
    db: Database,
):
    for _ in range(7):
        await row(db, published_ago="2 days")
    keep = await row(db, published_ago="1 hour")
    # A batch looks at the oldest three rows by id, whatever the table holds beyond them.
    assert await OUTBOX.prune_once(db, DAY, batch=3) == 3
    assert len(await left(db)) == 5

    publisher = Publisher("amqp://guest:guest@127.0.0.1:5672/%2F")  # never connected here
    relay = Relay(OUTBOX, db, publisher, interval=1.0, grace=2.0, retention=DAY.total_seconds())
    await relay.step()  # relays nothing (the publisher is not accepting), prunes the rest
    assert await left(db) == [keep]
    # The next prune waits a minute: a step right after deletes nothing more.
    await row(db, published_ago="2 days")
    await relay.step()
    assert len(await left(db)) == 2


async def test_a_relay_without_a_retention_never_prunes(db: Database):
    old = await row(db, published_ago="30 days")
    publisher = Publisher("amqp://guest:guest@127.0.0.1:5672/%2F")
    await Relay(OUTBOX, db, publisher, interval=1.0, grace=2.0).step()
    assert await left(db) == [old]
