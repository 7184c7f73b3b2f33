"""The pools' consumer: a message it cannot decode is dead-lettered, not dropped.

Celery 5.7 logs a body it fails to decode (broken JSON; or any refused content type, pickle
included, on a message without a `task` header) and *acks* it (`Consumer.on_decode_error`):
the message is gone without a trace in any queue. Here it is rejected without requeue, so
RabbitMQ dead-letters it to `<queue>.dlq` (x-death records `reason: rejected`, the queue and
the time), and the reason is logged with the message's task name and id.

A refused content type on a protocol 2 message (`task` header present) reaches
`on_invalid_task`, which Celery already rejects; it is overridden only to log the same short
line instead of Celery's dump of the body. No body is ever logged: it is untrusted and may
carry personal data. Pickle never runs: only JSON is accepted (`accept_content`), and kombu
checks the content type before anything deserialises the body.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import signals
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

    def on_invalid_task(self, body: Any, message: Any, exc: Exception) -> None:
        log.error(
            "invalid task message dead-lettered: %s: %s (%s)",
            type(exc).__name__,
            str(exc)[:200],
            describe(message),
        )
        message.reject_log_error(log, self.connection_errors, requeue=False)
        signals.task_rejected.send(sender=self, message=message, exc=exc)
