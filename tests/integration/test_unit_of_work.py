"""`UnitOfWork.execute_alone` on a real PostgreSQL: one statement, committed by itself, whether
it returns rows or not, and an outbox row it writes is as durable as the business row."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import Column, MetaData, String, Table, insert, select, text, update

from devtools.harness.stack import DB_PREFIX, PG_SERVER
from shared.infra.db import Database, create_database_if_missing
from shared.messaging.outbox import Dispatcher, Outbox, outbox_table
from shared.messaging.publisher import Publisher
from shared.messaging.uow import UnitOfWork

URL = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{DB_PREFIX}_uow"
metadata = MetaData()
things = Table("things", metadata, Column("id", String, primary_key=True), Column("state", String))
outbox = outbox_table(metadata)


@pytest.fixture
async def uow() -> AsyncIterator[UnitOfWork]:
    await create_database_if_missing(URL)
    db = Database(URL, pool_size=2)
    async with db.engine.begin() as connection:
        await connection.run_sync(metadata.drop_all)
        await connection.run_sync(metadata.create_all)
    publisher = Publisher("amqp://guest:guest@127.0.0.1:5672/%2F")  # never connected here
    yield UnitOfWork(db, Outbox(outbox), Dispatcher(Outbox(outbox), db, publisher))
    await db.dispose()
    connection = await asyncpg.connect(f"{PG_SERVER}/postgres")
    await connection.execute(f'DROP DATABASE IF EXISTS "{DB_PREFIX}_uow" WITH (FORCE)')
    await connection.close()


async def committed(uow: UnitOfWork, statement) -> list:
    """What another connection sees: only committed rows."""
    async with uow._db.engine.connect() as connection:
        return (await connection.execute(statement)).all()


async def test_a_statement_alone_is_committed_with_or_without_rows(uow: UnitOfWork):
    rows = await uow.execute_alone(
        insert(things).values(id="a", state="new").returning(things.c.id)
    )
    assert [dict(row) for row in rows] == [{"id": "a"}]
    # No RETURNING: no rows, and no error (an order mail's `sent` record is such a statement).
    assert await uow.execute_alone(update(things).values(state="done")) == []
    assert await committed(uow, select(things.c.state)) == [("done",)]
    assert await uow.execute_alone(select(things).where(things.c.id == "missing")) == []


async def test_a_failing_statement_leaves_nothing(uow: UnitOfWork):
    await uow.execute_alone(insert(things).values(id="a", state="new"))
    task = uow.task("inventory.reserve", order_id="a")
    with pytest.raises(Exception, match="duplicate key"):
        await uow.execute_alone(
            text(
                "WITH queued AS (INSERT INTO outbox (task_id, task_name, kwargs) "
                "VALUES (:task_id, :task_name, '{}'::jsonb)) "
                "INSERT INTO things (id, state) VALUES ('a', 'again')"
            ),
            {"task_id": task.id, "task_name": task.name},
        )
    assert await committed(uow, select(outbox.c.task_id)) == []
    assert await committed(uow, select(things.c.state)) == [("new",)]
