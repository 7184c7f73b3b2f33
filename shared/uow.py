"""The unit of work: one transaction, its outgoing tasks, and their publication after commit."""

from __future__ import annotations

from types import TracebackType

from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import Database
from shared.messages import OutgoingTask
from shared.observability import current_correlation_id
from shared.outbox import Dispatcher, Outbox


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

    def emit(self, name: str, **kwargs: object) -> OutgoingTask:
        task = OutgoingTask(name=name, kwargs=kwargs, correlation_id=current_correlation_id())
        self._emitted.append(task)
        return task

    async def commit(self) -> None:
        emitted, self._emitted = self._emitted, []
        await self._outbox.add(self.session, emitted)
        await self.session.commit()
        self._dispatcher.submit(emitted)

    async def rollback(self) -> None:
        self._emitted = []
        await self.session.rollback()
