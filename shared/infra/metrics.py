"""Service-side Prometheus metrics beyond HTTP requests: the outbox lag.

Per route request counts and latency live with the HTTP middleware (`shared.web.middleware`).
The outbox lag says whether tasks leave a service as fast as it commits them: how many rows
are still unpublished, and how old the oldest one is. A few rows younger than the relay's grace
period are normal (committed, not yet confirmed); a growing age means the broker refuses or is
gone. The outbox counts are sampled in the background (default every 5 s) so a scrape never
waits on the database. The dispatcher's lag (in memory, read at scrape time) says how far the
publishing right after commit runs behind the commits; the relay waits that much longer
before it steps in.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from prometheus_client import Gauge
from sqlalchemy import func, select

from shared.infra.db import Database
from shared.messaging.outbox import Dispatcher, Outbox
from shared.periodic import Periodic

log = logging.getLogger(__name__)

OUTBOX_UNPUBLISHED = Gauge(
    "doorbuster_outbox_unpublished", "Outbox rows not yet confirmed by the broker", ["service"]
)
OUTBOX_OLDEST_AGE = Gauge(
    "doorbuster_outbox_oldest_unpublished_age_seconds",
    "Age of the oldest unpublished outbox row (0 when none)",
    ["service"],
)
DISPATCHER_LAG = Gauge(
    "doorbuster_outbox_dispatcher_lag_seconds",
    "Seconds the oldest committed task handed to the dispatcher has waited for its publish",
    ["service"],
)


@dataclass(frozen=True)
class OutboxLag:
    unpublished: int
    oldest_age_seconds: float


async def outbox_lag(db: Database, outbox: Outbox, now: datetime | None = None) -> OutboxLag:
    table = outbox.table
    async with db.sessions() as session:
        count, oldest = (
            await session.execute(
                select(func.count(), func.min(table.c.created_at)).where(
                    table.c.published_at.is_(None)
                )
            )
        ).one()
    now = now or datetime.now(UTC)
    age = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
    return OutboxLag(int(count or 0), age)


class OutboxLagMonitor(Periodic):
    """Keeps the outbox gauges of one service current (one per API process)."""

    name = "outbox lag sample"
    failure_level = logging.DEBUG  # the database may be down; /readyz says so

    def __init__(
        self,
        service: str,
        db: Database,
        outbox: Outbox,
        interval: float,
        dispatcher: Dispatcher | None = None,
    ):
        super().__init__(interval)
        self._service, self._db, self._outbox = service, db, outbox
        if dispatcher is not None:  # read at scrape time: it is in memory
            DISPATCHER_LAG.labels(service).set_function(dispatcher.lag)
        OUTBOX_UNPUBLISHED.labels(service)
        OUTBOX_OLDEST_AGE.labels(service)

    async def sample(self) -> OutboxLag:
        lag = await outbox_lag(self._db, self._outbox)
        OUTBOX_UNPUBLISHED.labels(self._service).set(lag.unpublished)
        OUTBOX_OLDEST_AGE.labels(self._service).set(lag.oldest_age_seconds)
        return lag

    async def step(self) -> None:
        await self.sample()
