"""A step repeated in the background of a service every few seconds, until stopped.

The outbox relay, the outbox lag gauges and the queue-depth readings used for load shedding all
have this shape: run a step, survive its failure (the broker or the database may be away; the
next round tries again), sleep, repeat; start with the app, stop with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

log = logging.getLogger(__name__)


class Periodic:
    """Subclasses implement `step`; `interval` seconds pass between the end of one step and
    the start of the next. A failing step is retried next round; the first failure of a streak
    is logged at `failure_level`, the rest of the streak at debug (a step every second would
    otherwise bury every other line while, say, the management API is off), and the recovery
    once, with the number of failed rounds."""

    failure_level = logging.WARNING
    name = "periodic step"

    def __init__(self, interval: float):
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    async def step(self) -> None:
        raise NotImplementedError

    @property
    def running(self) -> bool:
        return self._task is not None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                await self.step()
            except Exception:
                failures += 1
                level = self.failure_level if failures == 1 else logging.DEBUG
                log.log(
                    level,
                    "%s failed; next try in %gs%s",
                    self.name,
                    self.interval,
                    "" if failures == 1 else f" ({failures} rounds failed in a row)",
                    exc_info=level >= logging.WARNING,
                )
            else:
                if failures:
                    log.log(
                        self.failure_level,
                        "%s works again after %d failed round(s)",
                        self.name,
                        failures,
                    )
                failures = 0
            await asyncio.sleep(self.interval)
