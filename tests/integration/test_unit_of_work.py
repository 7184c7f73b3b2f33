"""`UnitOfWork.fetch_alone` on a real PostgreSQL: one statement, committed by itself, whether
it returns rows or not, and an outbox row it writes is as durable as the business row."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import Column, MetaData, String, Table, insert, select

from shared.messages.orders import CommitReservation
from shared.messaging.outbox import Dispatcher, Outbox, outbox_table
from shared.messaging.publisher import Publisher
from shared.messaging.uow import UnitOfWork
from shared.messaging.wire import OutgoingTask
from tests.support.scratch_db import scratch_database

metadata = MetaData()
things = Table("things", metadata, Column("id", String, primary_key=True), Column("state", String))
outbox = outbox_table(metadata)


@pytest.fixture
async def uow() -> AsyncIterator[UnitOfWork]:
    async with scratch_database("uow", metadata) as db:
        publisher = Publisher("amqp://guest:guest@127.0.0.1:5672/%2F")  # never connected here
        yield UnitOfWork(db, Outbox(outbox), Dispatcher(Outbox(outbox), db, publisher))


async def committed(uow: UnitOfWork, statement) -> list:
    """What another connection sees: only committed rows."""
    async with uow._db.engine.connect() as connection:
        return (await connection.execute(statement)).all()


async def test_a_statement_alone_is_committed_with_or_without_rows(uow: UnitOfWork):
    rows = await uow.fetch_alone("INSERT INTO things (id, state) VALUES ('a', 'new') RETURNING id")
    assert [dict(row) for row in rows] == [{"id": "a"}]
    # No RETURNING: no rows, and no error (an order mail's `sent` record is such a statement).
    assert await uow.fetch_alone("UPDATE things SET state = 'done'") == []
    assert await committed(uow, select(things.c.state)) == [("done",)]
    assert await uow.fetch_alone("SELECT * FROM things WHERE id = $1", "missing") == []


async def test_a_failing_statement_leaves_nothing(uow: UnitOfWork):
    await uow.fetch_alone("INSERT INTO things (id, state) VALUES ('a', 'new')")
    task = OutgoingTask.of(CommitReservation(order_id="a"))
    with pytest.raises(Exception, match="duplicate key"):
        await uow.fetch_alone(
            "WITH queued AS (INSERT INTO outbox (task_id, task_name, kwargs) "
            "VALUES ($1, $2, '{}'::jsonb)) "
            "INSERT INTO things (id, state) VALUES ('a', 'again')",
            task.id,
            task.name,
        )
    assert await committed(uow, select(outbox.c.task_id)) == []
    assert await committed(uow, select(things.c.state)) == [("new",)]


async def test_a_unit_of_messages_only_commits_their_rows_and_a_rollback_drops_them(
    uow: UnitOfWork,
):
    async with uow:
        first = uow.emit(CommitReservation(order_id="a"))
        second = uow.emit(CommitReservation(order_id="b"))
        await uow.commit()  # nothing else in the unit: one statement, committed alone
    rows = await committed(uow, select(outbox.c.task_id, outbox.c.task_name, outbox.c.kwargs))
    assert sorted(rows) == sorted([(t.id, "inventory.commit", t.kwargs) for t in (first, second)])
    async with uow:
        await uow.session.execute(insert(things).values(id="c", state="new"))
        uow.emit(CommitReservation(order_id="c"))
        await uow.rollback()
    assert len(await committed(uow, select(outbox.c.task_id))) == 2
    assert await committed(uow, select(things.c.id)) == []
