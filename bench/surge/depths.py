"""Queue depths and workers per pool during the run, sampled once a second in a background
thread. A pool's workers are the consumers of its queue (one per worker process, whoever started
it: `make up`, `POOLS=`, or the autoscaler), as the broker counts them.

Each sample comes from passive declares over AMQP when the broker answers (ready messages,
exact at that moment: the backlog, read the way the APIs' load shedding reads it), else from
RabbitMQ's management API (ready + unacknowledged). AMQP comes first because the management
API's numbers are refreshed by the broker only every 5 s (`collect_statistics_interval`): on
this machine they moved in 5-second steps, too coarse for a surge that ramps up in 10 s. A
broker that answers neither (another test restarting it) leaves a gap and never stops the
run. The report says which source the samples came from.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import aio_pika
import httpx

from bench.surge import journal
from shared.infra.settings import Settings
from shared.messaging.topology import QueueName, dead_letter_queue
from workers.pools import pool_of_queue

QUEUES = [str(queue) for queue in QueueName] + [dead_letter_queue(queue) for queue in QueueName]
Depth = tuple[str, object, object, object]  # queue, messages, ready, unacked
Sample = tuple[list[Depth], dict[str, int]]  # the depths, and consumers per task queue


def vhost_of(amqp_url: str) -> str:
    """The vhost of an AMQP URL as RabbitMQ names it: `amqp://h//` and `amqp://h/` are `/`."""
    path = urlsplit(amqp_url).path
    return unquote(path[1:]) if len(path) > 1 else "/"


def management_url(settings: Settings) -> tuple[str, httpx.BasicAuth]:
    parts = urlsplit(settings.rabbitmq_management_url)
    vhost = quote(vhost_of(settings.rabbitmq_url), safe="")
    auth = httpx.BasicAuth(unquote(parts.username or "guest"), unquote(parts.password or "guest"))
    columns = "name,messages,messages_ready,messages_unacknowledged,consumers"
    base = f"{parts.scheme}://{parts.hostname}:{parts.port or 15672}"
    return f"{base}/api/queues/{vhost}?columns={columns}", auth


class DepthSampler(threading.Thread):
    def __init__(self, settings: Settings, folder: Path, interval: float = 1.0):
        super().__init__(name="queue-depths", daemon=True)
        self.settings, self.interval = settings, interval
        self.path = folder / journal.QUEUES
        self.workers_path = folder / journal.WORKERS
        self.sources: Counter[str] = Counter()
        self._stop_event = threading.Event()
        self._channel: aio_pika.abc.AbstractChannel | None = None
        self._connection: aio_pika.abc.AbstractConnection | None = None

    @property
    def source(self) -> str:
        return ", ".join(f"{name}: {n} samples" for name, n in self.sources.most_common()) or "none"

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=15)

    def run(self) -> None:
        asyncio.run(self._sample())

    async def _sample(self) -> None:
        out = journal.CsvAppender(self.path, journal.QUEUE_COLUMNS)
        workers = journal.CsvAppender(self.workers_path, journal.WORKER_COLUMNS)
        url, auth = management_url(self.settings)
        try:
            async with httpx.AsyncClient(auth=auth, timeout=2) as http:
                while not self._stop_event.is_set():
                    now = f"{time.time():.3f}"
                    sample = await self._from_amqp()
                    source = "AMQP passive declares (ready messages)"
                    managed = await self._from_management(http, url)
                    if sample is None:
                        sample = managed
                        source = "management API (ready + unacked, refreshed every ~5 s)"
                    self.sources[source if sample is not None else "no answer"] += 1
                    depths, consumers = sample or ([], {})
                    for depth in depths:
                        out.row(now, *depth)
                    # Workers per pool beside the depth the autoscaler and KEDA read (ready +
                    # unacked, management API); the consumers from AMQP when it does not answer.
                    counted = {name: messages for name, messages, _, _ in (managed or ([],))[0]}
                    for queue, count in (managed[1] if managed else consumers).items():
                        pool = pool_of_queue(queue)
                        if pool is not None:
                            workers.row(now, pool.value, queue, count, counted.get(queue, ""))
                    await asyncio.sleep(self.interval)
        finally:
            out.close()
            workers.close()
            if self._connection is not None:
                await self._connection.close()

    async def _from_management(self, http: httpx.AsyncClient, url: str) -> Sample | None:
        try:
            response = await http.get(url)
            listed = {queue["name"]: queue for queue in response.json()}
        except (httpx.HTTPError, ValueError, TypeError, KeyError):
            return None
        found = [(name, q) for name, q in ((name, listed.get(name)) for name in QUEUES) if q]
        depths: list[Depth] = [
            (
                name,
                q.get("messages", ""),
                q.get("messages_ready", ""),
                q.get("messages_unacknowledged", ""),
            )
            for name, q in found
        ]
        consumers = {name: int(q.get("consumers") or 0) for name, q in found}
        return depths, consumers

    async def _from_amqp(self) -> Sample | None:
        try:
            if self._connection is None or self._connection.is_closed:
                self._connection = await aio_pika.connect(self.settings.rabbitmq_url, timeout=2)
                self._channel = None
            depths: list[Depth] = []
            consumers: dict[str, int] = {}
            for name in QUEUES:
                if self._channel is None or self._channel.is_closed:
                    self._channel = await self._connection.channel()
                try:
                    queue = await self._channel.declare_queue(name, passive=True)
                except aio_pika.exceptions.ChannelClosed:
                    continue  # not declared yet; the next declare opens a new channel
                ready = queue.declaration_result.message_count or 0
                depths.append((name, ready, ready, ""))
                consumers[name] = queue.declaration_result.consumer_count or 0
            return depths, consumers
        except (TimeoutError, OSError, aio_pika.exceptions.AMQPError):
            return None
