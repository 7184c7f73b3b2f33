"""The background step shared by the outbox relay, the lag gauges and the queue depths."""

from __future__ import annotations

import asyncio
import logging

from shared.periodic import Periodic


class Counting(Periodic):
    name = "counting step"

    def __init__(self, interval: float, fail_first: int = 0):
        super().__init__(interval)
        self.calls, self.fail_first = 0, fail_first

    async def step(self) -> None:
        self.calls += 1
        if self.calls <= self.fail_first:
            raise ConnectionError("the broker is away")


async def test_the_step_repeats_until_stopped():
    periodic = Counting(0.01)
    periodic.start()
    await asyncio.sleep(0.1)
    await periodic.stop()
    calls = periodic.calls
    assert calls >= 3 and not periodic.running
    await asyncio.sleep(0.05)
    assert periodic.calls == calls  # stopped for good


async def test_a_failing_step_is_logged_and_tried_again(caplog):
    caplog.set_level(logging.DEBUG, logger="shared.periodic")
    periodic = Counting(0.01, fail_first=3)
    periodic.start()
    await asyncio.sleep(0.1)
    await periodic.stop()
    assert periodic.calls > 3
    failures = [r for r in caplog.records if "counting step failed" in r.getMessage()]
    # The streak's first failure at the step's level (with its traceback), the rest at debug.
    assert [r.levelno for r in failures] == [logging.WARNING, logging.DEBUG, logging.DEBUG]
    assert failures[0].exc_info and "3 rounds failed in a row" in failures[2].getMessage()
    recovered = [r for r in caplog.records if "counting step works again" in r.getMessage()]
    assert len(recovered) == 1 and recovered[0].levelno == logging.WARNING
    assert "after 3 failed round(s)" in recovered[0].getMessage()


async def test_start_twice_runs_one_loop_and_stop_without_start_is_harmless():
    periodic = Counting(0.05)
    await periodic.stop()
    periodic.start()
    first = periodic._task
    periodic.start()
    assert periodic._task is first
    await periodic.stop()
