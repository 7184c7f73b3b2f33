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
import contextlib
import logging
import time
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
    bindparam,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from shared.infra.db import Database
from shared.messaging.message import GATHERED_PER_MESSAGE, message_type
from shared.messaging.publisher import Publisher, PublisherUnavailable
from shared.messaging.wire import OutgoingTask
from shared.periodic import Periodic

log = logging.getLogger(__name__)


def gathers(name: str) -> bool:
    """Whether the dispatcher holds task `name` and sends it gathered (`Message.gathers`)."""
    try:
        return message_type(name).gathers
    except KeyError:  # a task no message declares (tests of what the pools refuse)
        return False


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
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("published_at", DateTime(timezone=True)),
        Column("attempts", Integer, nullable=False, server_default=text("0")),
        Index("ix_outbox_unpublished", "id", postgresql_where=text("published_at IS NULL")),
    )


def outbox_values(task: OutgoingTask) -> dict[str, object]:
    """The outbox row of `task`, as insert values or the parameters of a statement that writes
    the row itself (the orders checkout)."""
    return {
        "task_id": task.id,
        "task_name": task.name,
        "kwargs": task.kwargs,
        "correlation_id": task.correlation_id,
    }


class Outbox:
    def __init__(self, table: Table):
        self.table = table
        # The hot statements as asyncpg SQL (`Database.fetch_alone`); the name is the table's
        # own, never input.
        self._mark_alone = (
            f"UPDATE {table.name} SET published_at = now()"  # noqa: S608
            " WHERE task_id = ANY($1::text[])"
        )
        self._add_alone = (
            f"INSERT INTO {table.name} (task_id, task_name, kwargs, correlation_id)"  # noqa: S608
            " SELECT * FROM unnest($1::text[], $2::text[], $3::jsonb[], $4::text[])"
        )
        # The oldest `$2` rows by id (the primary key's order: a bounded read however many
        # rows the retention keeps), of which those published before the cutoff go.
        self._prune = (
            f"WITH gone AS (DELETE FROM {table.name} WHERE id IN (SELECT id FROM"  # noqa: S608
            f" (SELECT id, published_at FROM {table.name} ORDER BY id LIMIT $2) oldest"
            " WHERE published_at < now() - $1::interval) RETURNING 1)"
            " SELECT count(*) AS n FROM gone"
        )
        self._mark = (
            update(self.table)
            .where(self.table.c.task_id == func.any(bindparam("ids", type_=ARRAY(String))))
            .values(published_at=func.now())
        )

    async def add(self, session: AsyncSession, tasks: Sequence[OutgoingTask]) -> None:
        if tasks:
            await session.execute(self.table.insert(), [outbox_values(task) for task in tasks])

    async def mark_published(
        self, session: AsyncSession | AsyncConnection, task_ids: Sequence[str]
    ) -> None:
        # `= ANY(:ids)`, one array parameter: the statement compiles once, whatever the count.
        await session.execute(self._mark, {"ids": list(task_ids)})

    async def mark_published_alone(self, db: Database, task_ids: Sequence[str]) -> None:
        """Mark rows published in one statement of their own (the dispatcher's marks)."""
        await db.fetch_alone(self._mark_alone, list(task_ids))

    async def add_alone(self, db: Database, tasks: Sequence[OutgoingTask]) -> None:
        """Write outbox rows in one statement of their own (a unit that only emits)."""
        await db.fetch_alone(
            self._add_alone,
            [task.id for task in tasks],
            [task.name for task in tasks],
            [task.kwargs for task in tasks],
            [task.correlation_id for task in tasks],
        )

    async def prune_once(self, db: Database, retention: timedelta, batch: int = 5000) -> int:
        """Delete published rows older than `retention` among the oldest `batch`; returns how
        many went. Unpublished rows are never deleted, however old."""
        [row] = await db.fetch_alone(self._prune, retention, batch)
        return int(row["n"])

    async def relay_once(
        self, db: Database, publisher: Publisher, grace: timedelta, batch: int = 500
    ) -> int:
        """Re-publish unconfirmed rows older than `grace`; returns how many were published."""
        if not publisher.accepting:
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
                )
                for row in rows
            ]
            await session.execute(
                update(self.table)
                .where(self.table.c.id.in_([row.id for row in rows]))
                .values(attempts=self.table.c.attempts + 1)
            )
            await publisher.publish_many(tasks)
            await self.mark_published(session, [task.id for task in tasks])
        log.info("outbox relay published %d task(s)", len(tasks))
        return len(tasks)


class Relay(Periodic):
    """Background loop re-publishing what the outbox still holds (one per API process).

    It leaves alone what its own process's dispatcher still holds: rows count as forgotten
    only once they are `grace` older than the dispatcher's oldest task. Under overload the
    dispatcher falls seconds behind, and a relay that re-published its backlog doubled the
    publishing work exactly when the process had none to spare (measured: a third of the
    intake bench's tasks went out twice).
    """

    name = "outbox relay pass"

    # Pruning: at most this often, and at most this many batches a pass (a backlog of a
    # day's rows, after the retention was shortened, goes over a few passes, not in one).
    PRUNE_EVERY_SECONDS = 60.0
    PRUNE_BATCHES_PER_PASS = 20

    def __init__(
        self,
        outbox: Outbox,
        db: Database,
        publisher: Publisher,
        interval: float,
        grace: float,
        dispatcher: Dispatcher | None = None,
        retention: float | None = None,
    ):
        super().__init__(interval)
        self._outbox, self._db, self._publisher = outbox, db, publisher
        self._grace = timedelta(seconds=grace)
        self._dispatcher = dispatcher
        self._retention = None if retention is None else timedelta(seconds=retention)
        self._next_prune = time.monotonic()

    async def step(self) -> None:
        lag = self._dispatcher.lag() if self._dispatcher is not None else 0.0
        grace = self._grace + timedelta(seconds=lag)
        while await self._outbox.relay_once(self._db, self._publisher, grace):
            pass
        if self._retention is not None and time.monotonic() >= self._next_prune:
            self._next_prune = time.monotonic() + self.PRUNE_EVERY_SECONDS
            await self.prune()

    async def prune(self) -> int:
        """Delete what the retention no longer keeps; returns how many rows went."""
        assert self._retention is not None
        pruned = 0
        for _ in range(self.PRUNE_BATCHES_PER_PASS):
            went = await self._outbox.prune_once(self._db, self._retention)
            pruned += went
            if not went:
                break
        if pruned:
            log.info("outbox: pruned %d published row(s) older than %s", pruned, self._retention)
        return pruned


class Dispatcher:
    """Publishes committed outbox rows right after commit, off the request path.

    A unit of work hands over its committed tasks and returns at once; this loop publishes
    whatever has gathered (with confirms). The confirmed rows are marked published together,
    at most every `mark_interval` seconds, in one UPDATE: in a pool a batch is one or two
    tasks, and a mark per batch was a round trip per task. If the process dies first, or the
    broker refuses, the rows stay unpublished and the relay sends them after its grace period
    (a row confirmed but not yet marked may so go out twice, with its task id: idempotent).

    A message that `gathers` (the orders' commits) is held instead, for up to
    `gather_interval` seconds, and the ones held go out as one message (`Message.gathered`):
    one task for the receiver instead of one per row. Its rows are marked published once that
    message is confirmed; until then they are the dispatcher's (its `lag` counts them), and
    if the process dies, the relay sends each row alone after its grace.
    """

    def __init__(
        self,
        outbox: Outbox,
        db: Database,
        publisher: Publisher,
        max_batch: int = 500,
        mark_interval: float = 0.1,
        gather_interval: float = 0.25,
    ):
        self._outbox, self._db, self._publisher = outbox, db, publisher
        self._max_batch = max_batch
        self._mark_interval = mark_interval
        self._gather_interval = gather_interval
        self._confirmed: list[str] = []  # published, not yet marked
        self._marker: asyncio.Task[None] | None = None
        # Held tasks (by name) and since when the oldest of them waits (monotonic).
        self._held: dict[str, list[OutgoingTask]] = {}
        self._held_since: float | None = None
        self._gatherer: asyncio.Task[None] | None = None
        # The rows a gathered task stands for: marked published when it is confirmed.
        self._stands_for: dict[str, list[str]] = {}
        self._pending: list[OutgoingTask] = []
        # When each pending task was handed over (monotonic), and the oldest of the batch
        # being published: what `lag` reads.
        self._handed_over: list[float] = []
        self._in_flight_since: float | None = None
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._failures = 0  # batches refused in a row

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())
        self._marker = asyncio.create_task(self._mark_periodically())
        self._gatherer = asyncio.create_task(self._gather_periodically())

    def submit(self, tasks: Sequence[OutgoingTask]) -> None:
        now: list[OutgoingTask] = []
        for task in tasks:
            if gathers(task.name):
                self._held.setdefault(task.name, []).append(task)
                if self._held_since is None:
                    self._held_since = time.monotonic()
            else:
                now.append(task)
        self._hand_over(now)

    def _hand_over(self, tasks: Sequence[OutgoingTask], since: float | None = None) -> None:
        if tasks:
            self._pending.extend(tasks)
            self._handed_over.extend([since or time.monotonic()] * len(tasks))
            self._idle.clear()
            self._wake.set()

    def _release_held(self) -> None:
        """Hand over what is held, each kind as few messages as it takes."""
        held, since = self._held, self._held_since
        self._held, self._held_since = {}, None
        for name, tasks in held.items():
            kind = message_type(name)
            for start in range(0, len(tasks), GATHERED_PER_MESSAGE):
                chunk = tasks[start : start + GATHERED_PER_MESSAGE]
                one = OutgoingTask.of(kind.gathered([task.kwargs for task in chunk]))
                self._stands_for[one.id] = [task.id for task in chunk]
                self._hand_over([one], since)

    async def _gather_periodically(self) -> None:
        while True:
            await asyncio.sleep(self._gather_interval)
            self._release_held()

    async def stop(self, drain_seconds: float = 5.0) -> None:
        """Publish what is left (briefly), then stop; the relay covers anything unsent."""
        if self._task is None:
            return
        self._release_held()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(drain_seconds):
                if self._publisher.accepting:
                    await self._idle.wait()
        others = [task for task in (self._marker, self._gatherer) if task is not None]
        for task in (self._task, *others):
            task.cancel()
        await asyncio.gather(self._task, *others, return_exceptions=True)
        await self._mark()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch = self._pending[: self._max_batch]
                self._in_flight_since = self._handed_over[0]
                del self._pending[: self._max_batch], self._handed_over[: self._max_batch]
                try:
                    await self._send(batch)
                finally:
                    self._in_flight_since = None
            self._idle.set()

    def lag(self) -> float:
        """Seconds the oldest task handed over (or held) and not yet published has waited (0:
        idle)."""
        waiting = [
            since
            for since in (
                self._in_flight_since,
                self._handed_over[0] if self._handed_over else None,
                self._held_since,
            )
            if since is not None
        ]
        return time.monotonic() - min(waiting) if waiting else 0.0

    async def _send(self, batch: list[OutgoingTask]) -> None:
        try:
            await self._publisher.publish_many(batch)
        except PublisherUnavailable as exc:
            # The first refusal of a streak at warning, the rest at debug: while the broker is
            # down, blocked or silent every checkout's batch is refused at once (faults b, j, o).
            self._failures += 1
            level = logging.WARNING if self._failures == 1 else logging.DEBUG
            log.log(level, "publish after commit failed, the relay will retry: %s", exc)
            for task in batch:  # their rows stay unpublished: the relay sends each alone
                self._stands_for.pop(task.id, None)
            return
        if self._failures:
            log.warning(
                "publish after commit works again after %d failed batch(es)", self._failures
            )
            self._failures = 0
        for task in batch:
            self._confirmed.extend(self._stands_for.pop(task.id, None) or [task.id])

    async def _mark_periodically(self) -> None:
        while True:
            await asyncio.sleep(self._mark_interval)
            await self._mark()

    async def _mark(self) -> None:
        ids, self._confirmed = self._confirmed, []
        if not ids:
            return
        try:
            await self._outbox.mark_published_alone(self._db, ids)
        except Exception as exc:  # noqa: BLE001 - unmarked rows are only re-published (idempotent)
            log.warning("could not mark %d outbox rows published: %r", len(ids), exc)
