"""The transactional outbox: a task is committed with the state change that causes it.

A unit of work inserts its outgoing tasks into its own service's `outbox` table in the same
transaction as the business rows, publishes them right after commit and marks them published.
Whatever was not confirmed (the broker was down, the process died between commit and confirm) is
picked up by the `Relay`, which re-publishes unpublished rows older than a grace period. A task
may therefore be delivered more than once (always with the same task id): every task is
idempotent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import Database
from shared.messages import OutgoingTask
from shared.publisher import Publisher, PublisherUnavailable

log = logging.getLogger(__name__)


def outbox_table(metadata: MetaData) -> Table:
    """The outbox table, defined on a service's own metadata (each service migrates its own)."""
    return Table(
        "outbox",
        metadata,
        Column("id", BigInteger, primary_key=True, autoincrement=True),
        Column("task_id", String(64), nullable=False, unique=True),
        Column("task_name", String(128), nullable=False),
        Column("kwargs", JSONB, nullable=False),
        Column("correlation_id", String(64)),
        Column("priority", Integer),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("published_at", DateTime(timezone=True)),
        Column("attempts", Integer, nullable=False, server_default=text("0")),
        Index("ix_outbox_unpublished", "id", postgresql_where=text("published_at IS NULL")),
    )


class Outbox:
    def __init__(self, table: Table):
        self.table = table

    async def add(self, session: AsyncSession, tasks: Sequence[OutgoingTask]) -> None:
        if not tasks:
            return
        await session.execute(
            self.table.insert(),
            [
                {
                    "task_id": task.id,
                    "task_name": task.name,
                    "kwargs": task.kwargs,
                    "correlation_id": task.correlation_id,
                    "priority": task.priority_override,
                }
                for task in tasks
            ],
        )

    async def publish_committed(
        self, db: Database, publisher: Publisher, tasks: Sequence[OutgoingTask]
    ) -> bool:
        """Publish tasks whose rows are committed; mark them. False leaves them to the relay."""
        if not tasks:
            return True
        try:
            await publisher.publish_many(tasks)
        except PublisherUnavailable as exc:
            log.warning("publish after commit failed, the relay will retry: %s", exc)
            return False
        async with db.sessions.begin() as session:
            await self._mark_published(session, [task.id for task in tasks])
        return True

    async def _mark_published(self, session: AsyncSession, task_ids: Sequence[str]) -> None:
        await session.execute(
            update(self.table)
            .where(self.table.c.task_id.in_(task_ids))
            .values(published_at=func.now())
        )

    async def relay_once(
        self, db: Database, publisher: Publisher, grace: timedelta, batch: int = 500
    ) -> int:
        """Re-publish unconfirmed rows older than `grace`; returns how many were published."""
        if not publisher.is_ready:
            return 0
        cutoff = datetime.now(UTC) - grace
        async with db.sessions.begin() as session:
            rows = (
                await session.execute(
                    select(self.table)
                    .where(self.table.c.published_at.is_(None), self.table.c.created_at < cutoff)
                    .order_by(self.table.c.id)
                    .limit(batch)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not rows:
                return 0
            tasks = [
                OutgoingTask(
                    name=row.task_name,
                    kwargs=row.kwargs,
                    id=row.task_id,
                    correlation_id=row.correlation_id,
                    priority_override=row.priority,
                )
                for row in rows
            ]
            await session.execute(
                update(self.table)
                .where(self.table.c.id.in_([row.id for row in rows]))
                .values(attempts=self.table.c.attempts + 1)
            )
            await publisher.publish_many(tasks)
            await self._mark_published(session, [task.id for task in tasks])
        log.info("outbox relay published %d task(s)", len(tasks))
        return len(tasks)

    async def unpublished_count(self, db: Database) -> int:
        async with db.sessions() as session:
            return (
                await session.scalar(
                    select(func.count())
                    .select_from(self.table)
                    .where(self.table.c.published_at.is_(None))
                )
                or 0
            )


class Relay:
    """Background loop re-publishing what the outbox still holds (one per API process)."""

    def __init__(
        self,
        outbox: Outbox,
        db: Database,
        publisher: Publisher,
        interval: float,
        grace: float,
    ):
        self._outbox, self._db, self._publisher = outbox, db, publisher
        self._interval, self._grace = interval, timedelta(seconds=grace)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            try:
                while await self._outbox.relay_once(self._db, self._publisher, self._grace):
                    pass
            except Exception:
                log.warning("outbox relay pass failed; retrying", exc_info=True)
            await asyncio.sleep(self._interval)
