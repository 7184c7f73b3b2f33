"""The async publisher: one robust aio-pika connection per process, publisher confirms.

`publish_many` returns only after the broker confirmed every message (persistent, mandatory),
so the outbox marks a row published only when RabbitMQ has taken responsibility for it. While
the broker is unreachable the publisher says so at once (`PublisherUnavailable`) instead of
blocking a request: the rows stay in the outbox and the relay sends them later.

A broker on a memory or disk alarm blocks every connection that publishes: it stops reading
from its socket (RPCs on that connection hang, confirms never come) and sends
`connection.blocked`, then `connection.unblocked` once the alarm clears. `is_blocked` follows
those frames; while blocked, `publish_many` and `queue_depths` refuse at once instead of
writing frames the broker will only read (and route, as duplicates of what the relay sends
again) after the alarm, and `/readyz` says `broker blocked`.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractRobustConnection

from shared.messaging.topology import (
    DEAD_LETTER_EXCHANGE,
    TASK_EXCHANGE,
    QueueName,
    dead_letter_arguments,
    dead_letter_queue,
    queue_arguments,
    task_exchange_type,
)
from shared.messaging.wire import PUBLISHED_AT_HEADER, OutgoingTask, celery_body, celery_headers

log = logging.getLogger(__name__)


# Bounds a depth reading whatever hangs (opening the side channel has no timeout of its own).
DEPTHS_TIMEOUT_SECONDS = 3.0
RECONNECT_INTERVAL_SECONDS = 1.0


class PublisherUnavailable(RuntimeError):
    """The broker cannot take messages right now; the outbox keeps them."""


async def declare_topology(channel: AbstractChannel, queue_type: str = "classic") -> None:
    """Declare exchanges, queues and dead-letter queues exactly as `shared.messaging.topology`
    says."""
    tasks = await channel.declare_exchange(
        TASK_EXCHANGE, aio_pika.ExchangeType(task_exchange_type(queue_type)), durable=True
    )
    dlx = await channel.declare_exchange(
        DEAD_LETTER_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True
    )
    for queue in QueueName:
        declared = await channel.declare_queue(
            queue.value, durable=True, arguments=queue_arguments(queue, queue_type)
        )
        await declared.bind(tasks, routing_key=queue.value)
        dead = await channel.declare_queue(
            dead_letter_queue(queue), durable=True, arguments=dead_letter_arguments(queue_type)
        )
        await dead.bind(dlx, routing_key=dead_letter_queue(queue))


class Publisher:
    def __init__(
        self,
        url: str,
        queue_type: str = "classic",
        confirm_timeout: float = 5.0,
        ssl_context: ssl.SSLContext | None = None,
        heartbeat: int | None = None,
    ):
        self._url = url
        self._heartbeat = heartbeat
        self._queue_type = queue_type
        self._confirm_timeout = confirm_timeout
        self._ssl_context = ssl_context
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._side_channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._connecting: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    async def connect(self) -> None:
        """Connect and declare the topology; raises if the broker does not answer.

        The connection is kept from the moment it exists, not once it is made: cancelled while
        it connects (a shutdown during start-up), aio-pika's robust connection goes on
        reconnecting in a task of its own, which `close` must close, or the process would
        never exit (seen: an API that could not bind its port hung after uvicorn's exit)."""

        def kept(*args: Any, **kwargs: Any) -> aio_pika.RobustConnection:
            self._connection = aio_pika.RobustConnection(*args, **kwargs)
            return self._connection

        await aio_pika.connect_robust(
            self._url,
            timeout=5,
            ssl_context=self._ssl_context,
            connection_class=kept,
            # aio-pika waits 5 s before each try to reconnect: the first one after a partition
            # healed came up to 5 s late (fault o). Each try's own timeout is 5 s.
            reconnect_interval=RECONNECT_INTERVAL_SECONDS,
            **heartbeat_option(self._url, self._heartbeat),
        )
        assert self._connection is not None
        self._channel = await self._connection.channel(
            publisher_confirms=True, on_return_raises=True
        )
        await declare_topology(self._channel, self._queue_type)
        self._exchange = await self._channel.get_exchange(TASK_EXCHANGE)
        self.connected.set()

    def connect_in_background(self, retry_seconds: float = 1.0) -> None:
        """Keep trying to connect without blocking start-up (the broker may be down)."""

        async def keep_trying() -> None:
            while self._exchange is None:
                try:
                    await self.connect()
                    log.info("publisher connected to the broker")
                except Exception as exc:  # noqa: BLE001 - any failure: try again later
                    log.warning("broker not reachable yet: %s", exc)
                    await self._close_quietly()
                    await asyncio.sleep(retry_seconds)

        self._connecting = asyncio.create_task(keep_trying())

    def _underlay(self) -> Any:
        """aiormq's connection under aio-pika's (None while there is none)."""
        return getattr(getattr(self._connection, "transport", None), "connection", None)

    @property
    def is_blocked(self) -> bool:
        """The broker blocked this connection (`connection.blocked`: a memory or disk alarm).

        aiormq follows the frames in an event it does not expose (its writer and aio-pika's
        `ready()` wait on it); read here, defensively: an aiormq without it reads as unblocked,
        and publishes then fail on their confirm timeout as before."""
        unblocked = getattr(self._underlay(), "_Connection__connection_unblocked", None)
        return isinstance(unblocked, asyncio.Event) and not unblocked.is_set()

    @property
    def silent_seconds(self) -> float:
        """Seconds since the broker last sent a frame on this connection (0 when unknown)."""
        underlay = self._underlay()
        last = getattr(underlay, "_Connection__last_frame_time", None)
        loop = getattr(underlay, "loop", None)
        if not isinstance(last, float) or loop is None:
            return 0.0
        return max(loop.time() - last, 0.0)

    @property
    def is_silent(self) -> bool:
        """The broker sent nothing, not even a heartbeat, for a whole heartbeat interval (it
        sends one every half interval): the path to it drops packets, or it is gone.

        aiormq declares such a connection dead only after three intervals (33 s at 10 s), and
        until then a publish is written into a socket nobody reads: its confirm never comes,
        and the frames, if the path heals before the broker gives up on us, arrive late, as
        duplicates of what the relay sent meanwhile (fault o). While silent, `publish_many`
        refuses at once and `/readyz` says so, as on an alarm."""
        interval = getattr(self._underlay(), "heartbeat_timeout", 0)
        return isinstance(interval, int) and interval > 0 and self.silent_seconds > interval

    @property
    def accepting(self) -> bool:
        """Connected, not blocked by a broker alarm, and hearing from the broker: a publish
        can be confirmed now."""
        return self.is_ready and not self.is_blocked and not self.is_silent

    @property
    def is_ready(self) -> bool:
        return (
            self._exchange is not None
            and self._connection is not None
            and not self._connection.is_closed
            and self._channel is not None
            and not self._channel.is_closed
        )

    async def publish(self, task: OutgoingTask) -> None:
        await self.publish_many([task])

    async def publish_many(self, tasks: Iterable[OutgoingTask]) -> None:
        """Publish all, concurrently, and return when every one is confirmed."""
        if not self.is_ready or self._exchange is None:
            raise PublisherUnavailable("not connected to the broker")
        if self.is_blocked:
            raise PublisherUnavailable("the broker blocks publishers (memory or disk alarm)")
        if self.is_silent:
            raise PublisherUnavailable(f"the broker sent nothing for {self.silent_seconds:.0f} s")
        exchange = self._exchange
        try:
            await asyncio.gather(
                *(
                    exchange.publish(
                        _message(task),
                        routing_key=task.queue.value,
                        mandatory=True,
                        timeout=self._confirm_timeout,
                    )
                    for task in tasks
                )
            )
        except (aio_pika.exceptions.AMQPError, ConnectionError, TimeoutError) as exc:
            raise PublisherUnavailable(str(exc)) from exc

    async def queue_depths(self, queues: Iterable[str]) -> dict[str, int]:
        """Ready messages per queue, by passive declares on a side channel of this connection.

        A side channel, so that a failed declare (it closes its channel) never disturbs
        publishing; passive, so that it changes nothing and needs no queue arguments.
        """
        if not self.is_ready or self._connection is None:
            raise PublisherUnavailable("not connected to the broker")
        if self.is_blocked:
            # A blocked connection's RPCs (channel open, declare) wait for the alarm to end.
            raise PublisherUnavailable("the broker blocks this connection (memory or disk alarm)")
        try:
            async with asyncio.timeout(DEPTHS_TIMEOUT_SECONDS):
                return await self._queue_depths(queues)
        except TimeoutError as exc:
            raise PublisherUnavailable("queue depths: the broker did not answer") from exc

    async def _queue_depths(self, queues: Iterable[str]) -> dict[str, int]:
        connection = self._connection
        if connection is None:
            raise PublisherUnavailable("not connected to the broker")
        try:
            if self._side_channel is None or self._side_channel.is_closed:
                self._side_channel = await connection.channel(publisher_confirms=False)
            channel = await self._side_channel.get_underlay_channel()
            depths = {}
            for queue in queues:
                declared = await channel.queue_declare(queue, passive=True, timeout=2)
                depths[queue] = declared.message_count or 0
            return depths
        except (aio_pika.exceptions.AMQPError, ConnectionError, TimeoutError) as exc:
            raise PublisherUnavailable(str(exc)) from exc

    async def close(self) -> None:
        if self._connecting is not None:
            self._connecting.cancel()
            await asyncio.gather(self._connecting, return_exceptions=True)
        await self._close_quietly()

    async def _close_quietly(self) -> None:
        self.connected.clear()
        connection, self._connection = self._connection, None
        self._channel = self._exchange = self._side_channel = None
        if connection is not None:
            try:
                await connection.close()
            except Exception:
                log.debug("closing the broker connection failed", exc_info=True)


def heartbeat_option(url: str, heartbeat: int | None) -> dict[str, int]:
    """`heartbeat=` for aio-pika, unless the URL asks for its own (aio-pika's default is 60 s,
    and it gives a silent peer three intervals: a dead path went unnoticed for three minutes)."""
    if heartbeat is None or "heartbeat" in parse_qs(urlsplit(url).query):
        return {}
    return {"heartbeat": heartbeat}


def _message(task: OutgoingTask) -> aio_pika.Message:
    # `timestamp` (whole seconds, AMQP) gives the management API a head-message age; the
    # header keeps milliseconds for the workers' publish-to-start wait histogram.
    now = time.time()
    return aio_pika.Message(
        body=celery_body(task),
        headers={**celery_headers(task), PUBLISHED_AT_HEADER: round(now, 3)},
        timestamp=datetime.fromtimestamp(now, UTC),
        content_type="application/json",
        content_encoding="utf-8",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        priority=task.priority,
        correlation_id=task.id,
        message_id=task.id,
    )
