"""The unit of work: one transaction, its outgoing tasks, and their publication after commit."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Protocol, Self

from sqlalchemy.ext.asyncio import AsyncSession

from shared.infra.db import Database
from shared.infra.observability import current_correlation_id
from shared.messaging.message import Message
from shared.messaging.outbox import Dispatcher, Outbox
from shared.messaging.wire import OutgoingTask


class Work(Protocol):
    """What a use case asks of its unit of work: a transaction, the messages it emits, and
    their commit. `UnitOfWork` is the real one; tests/unit/fakes/ has one in memory that
    records what was emitted. A service's protocol adds its repository (`OrdersWork`)."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def emit(self, message: Message) -> OutgoingTask: ...

    def committed_alone(self) -> None: ...

    async def commit(self) -> None: ...

    async def rollback(self) -> None: ...


class UnitOfWork:
    """`async with uow:` opens a transaction; `emit` queues messages; `commit` makes both durable.

    Messages emitted inside the unit are written to the outbox in the same transaction and
    handed to the dispatcher right after commit; a rollback drops them with everything else.
    A use case that is one statement (`fetch_alone`) writes its emitted messages' outbox rows
    in that statement and hands them on with `committed_alone`.
    """

    session: AsyncSession

    def __init__(self, db: Database, outbox: Outbox, dispatcher: Dispatcher):
        self._db, self._outbox, self._dispatcher = db, outbox, dispatcher
        self._emitted: list[OutgoingTask] = []

    async def __aenter__(self) -> UnitOfWork:
        self.session = self._db.sessions()
        self._emitted = []
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self.session.rollback()
        finally:
            await self.session.close()

    def emit(self, message: Message) -> OutgoingTask:
        """Send `message` when this unit commits (under the current correlation id)."""
        task = OutgoingTask.of(message, correlation_id=current_correlation_id())
        self._emitted.append(task)
        return task

    async def fetch_alone(self, sql: str, *args: Any) -> list[Any]:
        """Run one statement as its own transaction and return its rows (a use case, or a step
        of one, that is a single statement, outbox rows included): PostgreSQL commits it by
        itself, one round trip instead of BEGIN, the statement and COMMIT. SQL text with `$1`
        parameters, run as a prepared asyncpg statement (`Database.fetch_alone`); rows are
        asyncpg Records. A statement that wrote the emitted messages' outbox rows is followed
        by `committed_alone`."""
        return await self._db.fetch_alone(sql, *args)

    def committed_alone(self) -> None:
        """The statement just run alone wrote the emitted messages' outbox rows: publish them
        now (the relay covers a crash before)."""
        emitted, self._emitted = self._emitted, []
        self._dispatcher.submit(emitted)

    async def commit(self) -> None:
        emitted, self._emitted = self._emitted, []
        if emitted and not self.session.in_transaction():
            # Nothing but messages: their outbox rows are one statement, committed alone
            # (one round trip instead of BEGIN, INSERT and COMMIT).
            await self._outbox.add_alone(self._db, emitted)
        else:
            await self._outbox.add(self.session, emitted)
            await self.session.commit()
        self._dispatcher.submit(emitted)

    async def rollback(self) -> None:
        self._emitted = []
        await self.session.rollback()
