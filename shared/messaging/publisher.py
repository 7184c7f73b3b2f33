"""The async publisher: one robust aio-pika connection per process, publisher confirms.

`publish_many` returns only after the broker confirmed every message (persistent, mandatory),
so the outbox marks a row published only when RabbitMQ has taken responsibility for it. While
the broker is unreachable the publisher says so at once (`PublisherUnavailable`) instead of
blocking a request: the rows stay in the outbox and the relay sends them later.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Iterable
from datetime import UTC, datetime

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
    ):
        self._url = url
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
        """Connect and declare the topology; raises if the broker does not answer."""
        self._connection = await aio_pika.connect_robust(
            self._url, timeout=5, ssl_context=self._ssl_context
        )
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
        try:
            if self._side_channel is None or self._side_channel.is_closed:
                self._side_channel = await self._connection.channel(publisher_confirms=False)
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
