"""The worker-heartbeat events: sent only while someone watches, and never retried.

Celery's `Heart` sends a `worker-heartbeat` event every 2 s (Flower's liveness) from the
consumer's event loop, with `retry=True` and no retry policy: while the broker is unreachable
that publish retries forever, and the loop with it. On a partition that drops packets the loop
then never ran the AMQP heartbeat check, so no pool noticed its dead connection: each sat on it
until the path healed (fault n, tests/faults/test_partitions.py). Sent once, an event still
holds the loop while it waits for its confirm (the transport's 8 s read timeout, workers/app.py):
with one every 2 s a pool found its dead connection after about 32 s instead of 20-25.

So heartbeats go out only while task events are on, i.e. while Flower runs (it turns them on
in every pool, `enable_events`), each sent once (one that fails is buffered by the dispatcher
and goes out with the next that works). `worker-online` and `worker-offline` are still sent.
The broker connection's own heartbeats (`broker_heartbeat`) are a separate thing, always on.
"""

from __future__ import annotations

from typing import Any

from celery.worker import heartbeat
from celery.worker.consumer import heart


class WatchedHeart(heartbeat.Heart):
    def _send(self, event: str, retry: bool = True) -> Any:
        if event == "worker-heartbeat" and "task" not in (self.eventer.groups or ()):
            return None  # nobody asked for events: Flower is not running
        return super()._send(event, retry=False)


class Heart(heart.Heart):
    """Celery's step, with `WatchedHeart`."""

    def start(self, c: Any) -> None:
        c.heart = WatchedHeart(c.timer, c.event_dispatcher, self.heartbeat_interval)
        c.heart.start()
