"""The unit of work: one transaction, its outgoing tasks, and their publication after commit."""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Any

from sqlalchemy import Executable
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from shared.infra.db import Database
from shared.infra.observability import current_correlation_id
from shared.messaging.outbox import Dispatcher, Outbox
from shared.messaging.wire import OutgoingTask


class UnitOfWork:
    """`async with uow:` opens a transaction; `emit` queues tasks; `commit` makes both durable.

    Tasks emitted inside the unit are written to the outbox in the same transaction and handed
    to the dispatcher right after commit; a rollback drops them with everything else.
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

    @staticmethod
    def task(name: str, **kwargs: object) -> OutgoingTask:
        """A task of this unit's request or task (it carries the current correlation id)."""
        return OutgoingTask(name=name, kwargs=kwargs, correlation_id=current_correlation_id())

    def emit(self, name: str, **kwargs: object) -> OutgoingTask:
        task = self.task(name, **kwargs)
        self._emitted.append(task)
        return task

    async def execute_alone(
        self, statement: Executable, parameters: dict[str, Any] | None = None
    ) -> list[RowMapping]:
        """Run one statement as its own transaction and return its rows (for a use case, or a
        step of one, that is a single statement, outbox rows included).

        PostgreSQL commits a single statement by itself (autocommit), so this costs one round
        trip instead of BEGIN, the statement and COMMIT (or ROLLBACK, for a read). The caller
        hands the tasks the statement wrote to `dispatch`.
        """
        async with self._db.autocommit() as connection:
            result = await connection.execute(statement, parameters)
            return list(result.mappings()) if result.returns_rows else []

    def dispatch(self, committed: Sequence[OutgoingTask]) -> None:
        """Publish tasks whose outbox rows are committed (the relay covers a crash before)."""
        self._dispatcher.submit(committed)

    async def commit(self) -> None:
        emitted, self._emitted = self._emitted, []
        await self._outbox.add(self.session, emitted)
        await self.session.commit()
        self._dispatcher.submit(emitted)

    async def rollback(self) -> None:
        self._emitted = []
        await self.session.rollback()
