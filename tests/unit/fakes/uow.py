"""A unit of work in memory: transactions over plain dicts, and a record of what was sent.

It subclasses the real `UnitOfWork` and keeps its contract: messages emitted inside a unit are
sent only when it commits (`sent`), a unit left without commit (an exception, a use case that
returns early) rolls its writes back, and a statement run alone commits at once.
"""

from __future__ import annotations

import copy
from types import TracebackType
from typing import Any, Self

from shared.messaging.message import Message
from shared.messaging.uow import UnitOfWork
from shared.messaging.wire import OutgoingTask


class FakeUnitOfWork(UnitOfWork):
    def __init__(self, *stores: dict[Any, Any]):  # no database, no outbox, no dispatcher
        self._stores = stores
        self._snapshot: list[dict[Any, Any]] | None = None
        self._pending: list[Message] = []
        self.sent: list[Message] = []
        self.commits = 0

    async def __aenter__(self) -> Self:
        self._pending = []
        self._snapshot = [copy.deepcopy(store) for store in self._stores]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.rollback()
        self._snapshot = None

    def emit(self, message: Message) -> OutgoingTask:
        self._pending.append(message)
        return OutgoingTask.of(message)

    def committed_alone(self) -> None:
        self.sent += self._pending
        self._pending = []

    async def commit(self) -> None:
        self.committed_alone()
        self.commits += 1
        self._snapshot = [copy.deepcopy(store) for store in self._stores]

    async def rollback(self) -> None:
        self._pending = []
        if self._snapshot is not None:
            for store, saved in zip(self._stores, self._snapshot, strict=True):
                store.clear()
                store.update(copy.deepcopy(saved))

    def sent_of(self, kind: type[Message]) -> list[Any]:
        """The messages of one class that were sent, in order."""
        return [message for message in self.sent if isinstance(message, kind)]
