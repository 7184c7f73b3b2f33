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
    the start of the next. A failing step is logged at `failure_level` and retried next round."""

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
        while True:
            try:
                await self.step()
            except Exception:
                log.log(
                    self.failure_level,
                    "%s failed; next try in %gs",
                    self.name,
                    self.interval,
                    exc_info=self.failure_level >= logging.WARNING,
                )
            await asyncio.sleep(self.interval)
