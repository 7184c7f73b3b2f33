"""The dispatcher reports how far behind it is, and the relay leaves that backlog alone: under
overload it must not publish the same tasks a second time."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from shared.messaging.outbox import Dispatcher, Relay
from shared.messaging.publisher import PublisherUnavailable
from shared.messaging.wire import OutgoingTask


class SlowPublisher:
    is_ready = True
    accepting = True

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.published: list[str] = []

    async def publish_many(self, tasks):
        await self.release.wait()
        self.published.extend(task.id for task in tasks)


class NoMarks:
    """The outbox side: marks are not what this test looks at."""

    async def mark_published_alone(self, db, task_ids) -> None:
        return None

    async def relay_once(self, db, publisher, grace: timedelta) -> int:
        self.graces.append(grace)
        return 0


class AutocommitDb:
    def autocommit(self):
        class Connection:
            async def __aenter__(self):
                return None

            async def __aexit__(self, *exc):
                return None

        return Connection()


async def test_lag_grows_while_a_batch_waits_for_confirms_and_is_zero_when_idle():
    publisher = SlowPublisher()
    dispatcher = Dispatcher(NoMarks(), AutocommitDb(), publisher)
    assert dispatcher.lag() == 0.0
    dispatcher.start()
    dispatcher.submit([OutgoingTask("inventory.reserve")])
    await asyncio.sleep(0.2)
    dispatcher.submit([OutgoingTask("inventory.reserve")])
    assert dispatcher.lag() >= 0.2  # the first task is in flight since it was handed over
    publisher.release.set()
    await dispatcher.stop()
    assert len(publisher.published) == 2
    assert dispatcher.lag() == 0.0


async def test_the_relay_waits_out_its_dispatcher_s_backlog():
    publisher = SlowPublisher()
    outbox = NoMarks()
    outbox.graces = []
    dispatcher = Dispatcher(outbox, AutocommitDb(), publisher)
    dispatcher.start()
    dispatcher.submit([OutgoingTask("inventory.reserve")])
    await asyncio.sleep(0.3)
    relay = Relay(outbox, None, publisher, interval=1.0, grace=2.0, dispatcher=dispatcher)
    await relay.step()
    assert outbox.graces[-1] >= timedelta(seconds=2.3)
    publisher.release.set()
    await dispatcher.stop()
    await relay.step()
    assert outbox.graces[-1] == timedelta(seconds=2)


async def test_the_dispatcher_lag_is_exported_per_service_at_scrape_time():
    from prometheus_client import REGISTRY

    from shared.infra.metrics import OutboxLagMonitor

    publisher = SlowPublisher()
    dispatcher = Dispatcher(NoMarks(), AutocommitDb(), publisher)
    OutboxLagMonitor("lagtest", AutocommitDb(), NoMarks(), interval=5, dispatcher=dispatcher)
    lag = {"name": "doorbuster_outbox_dispatcher_lag_seconds", "labels": {"service": "lagtest"}}
    assert REGISTRY.get_sample_value(**lag) == 0.0
    assert REGISTRY.get_sample_value("doorbuster_outbox_unpublished", {"service": "lagtest"}) == 0
    dispatcher.start()
    dispatcher.submit([OutgoingTask("inventory.reserve")])
    await asyncio.sleep(0.2)
    assert REGISTRY.get_sample_value(**lag) >= 0.2
    publisher.release.set()
    await dispatcher.stop()
    assert REGISTRY.get_sample_value(**lag) == 0.0


class RecordingMarks(NoMarks):
    def __init__(self) -> None:
        self.marks: list[list[str]] = []

    async def mark_published_alone(self, db, task_ids) -> None:
        self.marks.append(list(task_ids))


async def test_confirmed_rows_are_marked_together_not_one_update_per_batch():
    publisher, outbox = SlowPublisher(), RecordingMarks()
    publisher.release.set()
    dispatcher = Dispatcher(outbox, AutocommitDb(), publisher, mark_interval=0.2)
    dispatcher.start()
    tasks = [OutgoingTask("payments.charge") for _ in range(3)]
    for task in tasks:  # three units of work, three batches
        dispatcher.submit([task])
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.3)
    assert outbox.marks == [[task.id for task in tasks]]
    late = OutgoingTask("payments.charge")
    dispatcher.submit([late])
    await dispatcher.stop()  # what is confirmed at stop is marked then
    assert outbox.marks[-1] == [late.id]


class RefusingPublisher:
    """Refuses `refusals` batches (the broker away or silent), then takes every one."""

    is_ready = True
    accepting = True

    def __init__(self, refusals: int) -> None:
        self.refusals = refusals

    async def publish_many(self, tasks):
        if self.refusals:
            self.refusals -= 1
            raise PublisherUnavailable("the broker sent nothing for 12 s")


async def test_a_streak_of_refused_batches_is_logged_once_then_once_when_it_ends(caplog):
    dispatcher = Dispatcher(NoMarks(), AutocommitDb(), RefusingPublisher(refusals=3))
    dispatcher.start()
    with caplog.at_level(logging.DEBUG, logger="shared.messaging.outbox"):
        for _ in range(4):
            dispatcher.submit([OutgoingTask("inventory.reserve")])
            await asyncio.sleep(0.02)
    await dispatcher.stop()
    said = [(r.levelno, r.getMessage()) for r in caplog.records]
    refused = "publish after commit failed, the relay will retry: the broker sent nothing for 12 s"
    assert said == [
        (logging.WARNING, refused),
        (logging.DEBUG, refused),
        (logging.DEBUG, refused),
        (logging.WARNING, "publish after commit works again after 3 failed batch(es)"),
    ]
