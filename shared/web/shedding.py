"""Load shedding: refuse work (503 + Retry-After) while a queue behind the route is too deep.

Each API process watches the queues its routes feed: a background task asks the broker for
their depth (passive declares on a side channel of the publisher's connection) every
`SHED_REFRESH_SECONDS`, and requests only read the cached numbers. A route opts in with the
dependency `shed_if_backlogged(queue, ...)`. Limits are settings (`SHED_LIMIT_<QUEUE>`), and
their order decides who sheds first: the bulk queue fed by campaign creation has the lowest
limit, the orders queue fed by checkout the highest (docs/api.md).

Checkout also sheds on the payments backlog's age (`shed_if_charges_wait`): an order accepted
while the oldest charge has already waited longer than `SHED_PAYMENTS_WAIT_FRACTION` of the
reservation timeout would likely be cancelled by the expiry sweep before its charge runs. The
age is the management API's `head_message_timestamp` (our publisher stamps every message).

While the depth or the age is unknown (broker down, or no fresh reading) nothing is shed:
checkout keeps accepting into the outbox, as the design asks.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import httpx
from fastapi import FastAPI, Request
from prometheus_client import Counter, Gauge

from shared.infra.settings import Settings
from shared.messaging.publisher import Publisher, PublisherUnavailable
from shared.messaging.topology import QueueName
from shared.periodic import Periodic
from shared.web.auth import dependency_calls
from shared.web.guard import api_routes
from shared.web.problems import Problem

log = logging.getLogger(__name__)
QUEUE_DEPTH = Gauge("doorbuster_queue_depth", "Ready messages, as last read", ["queue"])
SHED = Counter("doorbuster_http_shed_total", "Requests refused by load shedding", ["queue"])


class QueueDepths(Periodic):
    """The last depth read of each watched queue, refreshed in the background."""

    name = "queue depth reading"

    def __init__(
        self,
        publisher: Publisher,
        queues: Iterable[QueueName],
        interval: float = 0.5,
        stale_after: float = 5.0,
    ):
        super().__init__(interval)
        self._publisher = publisher
        self.queues = tuple(sorted(set(queues)))
        self._stale_after = stale_after
        self._readings: dict[QueueName, tuple[int, float]] = {}

    def depth(self, queue: QueueName) -> int | None:
        """The depth of `queue` if read recently enough, else None (unknown)."""
        reading = self._readings.get(queue)
        if reading is None or time.monotonic() - reading[1] > self._stale_after:
            return None
        return reading[0]

    async def refresh(self) -> None:
        depths = await self._publisher.queue_depths(queue.value for queue in self.queues)
        now = time.monotonic()
        for queue in self.queues:
            self._readings[queue] = (depths[queue.value], now)
            QUEUE_DEPTH.labels(queue.value).set(depths[queue.value])

    def start(self) -> None:
        if self.queues:
            super().start()

    async def step(self) -> None:
        with contextlib.suppress(PublisherUnavailable):  # stale readings shed nothing
            await self.refresh()


class ShedIfBacklogged:
    """A FastAPI dependency: 503 + Retry-After while any of `queues` is past its limit."""

    def __init__(self, queues: tuple[QueueName, ...]):
        self.queues = queues

    async def __call__(self, request: Request) -> None:
        settings: Settings = request.app.state.settings
        depths: QueueDepths = request.app.state.queue_depths
        for queue in self.queues:
            depth = depths.depth(queue)
            if depth is not None and depth > shed_limit(settings, queue):
                SHED.labels(queue.value).inc()
                raise Problem(
                    503,
                    "overloaded",
                    f"Too much work is waiting ({queue.value}); nothing was accepted. Retry later.",
                    headers={"Retry-After": str(settings.shed_retry_after_seconds)},
                )


class OldestWaits(Periodic):
    """How long the head message of each watched queue has waited, as last read from the
    management API (its statistics are a few seconds old: fine against minutes of timeout)."""

    name = "oldest message reading"
    # The management API down is not news for every request second: nothing is shed then.
    failure_level = logging.INFO

    def __init__(
        self,
        management_url: str,
        broker_url: str,
        queues: Iterable[QueueName],
        interval: float = 1.0,
        stale_after: float = 15.0,
    ):
        super().__init__(interval)
        self._management_url = management_url.rstrip("/")
        self._vhost = quote(unquote(urlsplit(broker_url).path[1:]) or "/", safe="")
        self.queues = tuple(sorted(set(queues)))
        self._stale_after = stale_after
        self._readings: dict[QueueName, tuple[float | None, float]] = {}
        self._client: httpx.AsyncClient | None = None

    def waited(self, queue: QueueName) -> float | None:
        """Seconds the head message of `queue` has waited (0 when empty); None if unknown."""
        reading = self._readings.get(queue)
        if reading is None or time.monotonic() - reading[1] > self._stale_after:
            return None
        stamp = reading[0]
        return 0.0 if stamp is None else max(0.0, time.time() - stamp)

    async def refresh(self) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=2)
        for queue in self.queues:
            response = await self._client.get(
                f"{self._management_url}/api/queues/{self._vhost}/{quote(queue.value)}",
                params={"columns": "messages_ready,head_message_timestamp"},
            )
            response.raise_for_status()
            stats = response.json()
            stamp = stats.get("head_message_timestamp") if stats.get("messages_ready") else None
            self._readings[queue] = (float(stamp) if stamp else None, time.monotonic())

    def start(self) -> None:
        if self.queues:
            super().start()

    async def step(self) -> None:
        await self.refresh()

    async def stop(self) -> None:
        await super().stop()
        if self._client is not None:
            await self._client.aclose()
            self._client = None


class ShedIfChargesWait:
    """A FastAPI dependency: 503 + Retry-After while the oldest charge has waited longer than
    SHED_PAYMENTS_WAIT_FRACTION of RESERVATION_TIMEOUT_SECONDS."""

    queue = QueueName.PAYMENTS

    async def __call__(self, request: Request) -> None:
        settings: Settings = request.app.state.settings
        waits: OldestWaits = request.app.state.oldest_waits
        waited = waits.waited(self.queue)
        limit = settings.shed_payments_wait_fraction * settings.reservation_timeout_seconds
        if waited is not None and waited > limit:
            SHED.labels(self.queue.value).inc()
            raise Problem(
                503,
                "overloaded",
                f"Payments are {waited:.0f} s behind; nothing was accepted. Retry later.",
                headers={"Retry-After": str(settings.shed_retry_after_seconds)},
            )


def shed_if_charges_wait() -> ShedIfChargesWait:
    """Use as `dependencies=[Depends(shed_if_charges_wait())]` on a route that leads to a charge."""
    return ShedIfChargesWait()


def shed_if_backlogged(*queues: QueueName) -> ShedIfBacklogged:
    """Use as `dependencies=[Depends(shed_if_backlogged(QueueName.BULK))]` on a route."""
    return ShedIfBacklogged(queues)


def shed_limit(settings: Settings, queue: QueueName) -> int:
    """`SHED_LIMIT_<NAME>` for `QueueName.<NAME>`, e.g. SHED_LIMIT_BULK."""
    return int(getattr(settings, f"shed_limit_{queue.name.lower()}"))


def shedding_queues(route: Any) -> tuple[QueueName, ...]:
    found: list[QueueName] = []
    for call in dependency_calls(route.dependant):
        if isinstance(call, ShedIfBacklogged):
            found.extend(call.queues)
    return tuple(found)


def waited_queues(app: FastAPI) -> set[QueueName]:
    """The queues whose head-message age the routes of `app` shed on."""
    return {
        call.queue
        for route in api_routes(app)
        for call in dependency_calls(route.dependant)
        if isinstance(call, ShedIfChargesWait)
    }


def watched_queues(app: FastAPI) -> set[QueueName]:
    """The queues the routes of `app` shed on: the ones this service must watch."""
    return {queue for route in api_routes(app) for queue in shedding_queues(route)}
