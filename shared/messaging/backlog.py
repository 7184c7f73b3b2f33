"""How long the head message of a queue has waited, from RabbitMQ's management API.

The expiry sweep adds the payments queue's wait to the reservation timeout: a charge that sat
in a backlog waited for the system, not for its customer. The age is the queue's
`head_message_timestamp` (our publisher stamps every message with its AMQP `timestamp`; the
statistics are a few seconds old, fine against minutes of timeout). The checkout's shedding
reads the same number continuously (shared/web/shedding.py); this is a one-off reading.
"""

from __future__ import annotations

import time
from urllib.parse import quote, unquote, urlsplit

import httpx

from shared.messaging.topology import QueueName


class BacklogUnknown(ValueError):
    """The management API answered, but not with the queue's statistics (seen for a queue
    declared a moment ago: an empty list)."""


async def head_message_wait(
    management_url: str, broker_url: str, queue: QueueName, request_seconds: float = 2.0
) -> float:
    """Seconds the oldest ready message of `queue` has waited (0 when none is ready).

    Raises `httpx.HTTPError` when the management API cannot be asked (down, or the plugin
    off), `ValueError` (`BacklogUnknown`) when its answer does not say."""
    vhost = quote(unquote(urlsplit(broker_url).path[1:]) or "/", safe="")
    async with httpx.AsyncClient(timeout=request_seconds) as client:
        response = await client.get(
            f"{management_url.rstrip('/')}/api/queues/{vhost}/{quote(queue.value)}",
            params={"columns": "messages_ready,head_message_timestamp"},
        )
        response.raise_for_status()
    stats = response.json()
    if not isinstance(stats, dict):
        raise BacklogUnknown(f"statistics of {queue.value}: {str(stats)[:100]}")
    stamp = stats.get("head_message_timestamp") if stats.get("messages_ready") else None
    return max(0.0, time.time() - float(stamp)) if stamp else 0.0
