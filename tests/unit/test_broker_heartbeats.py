"""How soon a dead path to the broker is found: every broker connection asks for the same
heartbeat (BROKER_HEARTBEAT_SECONDS), and the pools' event loop never waits on a worker-heartbeat
event (faults n and o, tests/faults/test_partitions.py)."""

from __future__ import annotations

import inspect

import pytest
from celery.worker import heartbeat
from kombu import Connection

from shared.infra.settings import Settings
from shared.messaging.publisher import Publisher, PublisherUnavailable, heartbeat_option
from shared.messaging.wire import OutgoingTask
from workers.app import make_celery
from workers.consumer import RECONNECT_INTERVALS, DeadLetteringConsumer
from workers.heart import WatchedHeart
from workers.pools import Pool


def test_celery_and_aio_pika_ask_for_the_configured_heartbeat():
    settings = Settings(broker_heartbeat_seconds=7)
    assert make_celery(Pool.PAYMENTS, settings).conf.broker_heartbeat == 7
    assert Settings().broker_heartbeat_seconds == 10
    assert heartbeat_option("amqp://guest:guest@127.0.0.1:5672/v", 7) == {"heartbeat": 7}


def test_a_heartbeat_in_the_url_wins():
    assert heartbeat_option("amqp://127.0.0.1/v?heartbeat=30", 10) == {}
    assert heartbeat_option("amqp://127.0.0.1/v", None) == {}


class RecordingDispatcher:
    """What the heart hands the dispatcher; enabled, with the hooks `Heart` registers on."""

    enabled = True

    def __init__(self, groups: set[str] | None = None) -> None:
        self.groups = groups
        self.on_enabled: set = set()
        self.on_disabled: set = set()
        self.sent: list[tuple[str, bool]] = []

    def send(self, event: str, retry: bool = False, **fields: object) -> None:
        self.sent.append((event, retry))


class NoTimer:
    def call_repeatedly(self, *args: object) -> object:
        return object()

    def cancel(self, tref: object) -> None:
        pass


def test_worker_heartbeat_events_only_while_watched_and_never_retried():
    # Celery's own Heart retries (forever, no policy), on the consumer's event loop.
    dispatcher = RecordingDispatcher({"worker"})
    heartbeat.Heart(NoTimer(), dispatcher)._send("worker-heartbeat")
    assert dispatcher.sent == [("worker-heartbeat", True)]

    dispatcher = RecordingDispatcher({"worker"})  # task events off: nobody watches
    heart = WatchedHeart(NoTimer(), dispatcher)
    heart.start()
    heart._send("worker-heartbeat")
    dispatcher.groups.add("task")  # Flower's `enable_events`
    heart._send("worker-heartbeat")
    heart.stop()
    assert dispatcher.sent == [
        ("worker-online", False),
        ("worker-heartbeat", False),
        ("worker-offline", False),
    ]


def test_the_pools_consumer_runs_that_heart():
    steps = DeadLetteringConsumer.Blueprint.default_steps
    assert "workers.heart:Heart" in steps
    assert "celery.worker.consumer.heart:Heart" not in steps


def test_a_pool_tries_to_reconnect_every_few_seconds_for_as_long_as_it_takes():
    inspect.signature(Connection.ensure_connection).bind_partial(**RECONNECT_INTERVALS)
    assert RECONNECT_INTERVALS["interval_max"] <= 3
    assert make_celery(Pool.ORDERS, Settings()).conf.broker_connection_max_retries is None


class Underlay:
    """The two aiormq attributes the publisher reads, on a clock the test moves."""

    def __init__(self, heartbeat: int, silent_for: float) -> None:
        self.heartbeat_timeout = heartbeat
        self.loop = self
        self.now = 1000.0
        self._Connection__last_frame_time = self.now - silent_for

    def time(self) -> float:
        return self.now


class Connected:
    is_closed = False

    def __init__(self, underlay: Underlay) -> None:
        self.transport = type("Transport", (), {"connection": underlay})()


def publisher_hearing(underlay: Underlay) -> Publisher:
    publisher = Publisher("amqp://127.0.0.1/v", heartbeat=10)
    publisher._connection = Connected(underlay)  # type: ignore[assignment]
    publisher._channel = publisher._exchange = Connected(underlay)  # type: ignore[assignment]
    return publisher


async def test_a_broker_silent_for_a_heartbeat_interval_refuses_publishes_at_once():
    underlay = Underlay(heartbeat=10, silent_for=4)
    publisher = publisher_hearing(underlay)
    assert publisher.accepting and not publisher.is_silent

    underlay.now += 7  # 11 s without a frame: the broker sends one every 5 s
    assert publisher.is_silent and publisher.silent_seconds == 11
    assert not publisher.accepting
    with pytest.raises(PublisherUnavailable, match="sent nothing for 11 s"):
        await publisher.publish_many([OutgoingTask("orders.noop", {})])

    underlay._Connection__last_frame_time = underlay.now  # a heartbeat arrives
    assert publisher.accepting


def test_without_heartbeats_nothing_is_ever_silent():
    assert not publisher_hearing(Underlay(heartbeat=0, silent_for=600)).is_silent
    assert Publisher("amqp://127.0.0.1/v").silent_seconds == 0


async def test_the_aiormq_installed_keeps_the_attributes_the_publisher_reads():
    # Read defensively (an aiormq without them reads as never silent): pinned here, so that
    # an upgrade that renames them fails a test instead of turning the check off.
    import aiormq

    connection = aiormq.Connection("amqp://127.0.0.1/v?heartbeat=10")  # never connected
    assert isinstance(connection._Connection__last_frame_time, float)  # type: ignore[attr-defined]
    assert connection.heartbeat_timeout == 10
    assert connection.loop.time() >= connection._Connection__last_frame_time  # type: ignore[attr-defined]
