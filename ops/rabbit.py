"""The RabbitMQ management HTTP API, as the ops CLI reads it.

Depth, rates and consumers come from `GET /api/queues/<vhost>`; RabbitMQ refreshes them every
5 s (`collect_statistics_interval`), so they may lag that much. Messages are peeked with
`POST .../get` and `ackmode=ack_requeue_true`: they go back where they were, flagged redelivered.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, unquote, urlsplit

import httpx


def vhost_of(amqp_url: str) -> str:
    """`amqp://u:p@host:5672/shop` -> `shop`; an empty path or `/` -> the default vhost `/`."""
    path = urlsplit(amqp_url).path
    return unquote(path[1:]) if len(path) > 1 else "/"


class Management:
    def __init__(self, url: str, vhost: str, timeout: float = 10.0):
        parts = urlsplit(url)
        auth = (unquote(parts.username or "guest"), unquote(parts.password or "guest"))
        netloc = parts.hostname or "127.0.0.1"
        if parts.port:
            netloc = f"{netloc}:{parts.port}"
        base = f"{parts.scheme or 'http'}://{netloc}{parts.path.rstrip('/')}/api"
        self.vhost = vhost
        self._http = httpx.Client(base_url=base, auth=auth, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Management:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _path(self, *parts: str) -> str:
        return "/" + "/".join(quote(part, safe="") for part in parts)

    def queues(self) -> dict[str, dict[str, Any]]:
        response = self._http.get(self._path("queues", self.vhost))
        response.raise_for_status()
        return {queue["name"]: queue for queue in response.json()}

    def queue(self, name: str) -> dict[str, Any]:
        response = self._http.get(self._path("queues", self.vhost, name))
        response.raise_for_status()
        return response.json()

    def peek(self, queue: str, count: int) -> list[dict[str, Any]]:
        """Up to `count` messages from the head of `queue`, requeued as they were; none from a
        queue nobody has declared yet (a dead-letter queue appears with the first publish)."""
        response = self._http.post(
            self._path("queues", self.vhost, queue, "get"),
            json={
                "count": count,
                "ackmode": "ack_requeue_true",
                "encoding": "auto",
                "truncate": 100_000,
            },
        )
        if response.status_code == httpx.codes.NOT_FOUND:
            return []
        response.raise_for_status()
        return response.json()
