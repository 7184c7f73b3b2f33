"""The pools' consumer: a message it cannot decode is dead-lettered, not dropped.

Celery 5.7 logs a body it refuses to decode (broken JSON, or a content type it does not
accept when the refusal happens at decode time) and *acks* it (`Consumer.on_decode_error`):
the message is gone without a trace in any queue. Here it is rejected without requeue, so
RabbitMQ dead-letters it to `<queue>.dlq` (x-death records `reason: rejected`, the queue and
the time), and the reason is logged with the message's task name and id. Its body is never
logged: it is untrusted and may carry personal data.

Pickle never runs: only JSON is accepted (`accept_content`), and a pickle body is refused
before anything deserialises it (kombu checks the content type first).
"""

from __future__ import annotations

import logging
from typing import Any

from celery.worker.consumer import Consumer

log = logging.getLogger(__name__)


def describe(message: Any) -> dict[str, Any]:
    headers = message.headers or {}
    return {
        "task": headers.get("task"),
        "task_id": headers.get("id") or message.properties.get("correlation_id"),
        "queue": (message.delivery_info or {}).get("routing_key"),
        "content_type": message.content_type,
    }


class DeadLetteringConsumer(Consumer):
    def on_decode_error(self, message: Any, exc: Exception) -> None:
        log.error(
            "undecodable message dead-lettered: %s: %s (%s)",
            type(exc).__name__,
            str(exc)[:200],
            describe(message),
        )
        message.reject_log_error(log, self.connection_errors, requeue=False)
