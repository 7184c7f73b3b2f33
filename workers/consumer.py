"""The pools' consumer: a message no task may run is dead-lettered with a readable reason,
never dropped, never decoded when it is too big.

Celery 5.7 logs a body it fails to decode (broken JSON; or any refused content type, pickle
included, on a message without a `task` header) and *acks* it (`Consumer.on_decode_error`):
the message is gone without a trace in any queue. Here every poison message is rejected
without requeue, so RabbitMQ dead-letters it to `<queue>.dlq` (x-death records `reason:
rejected`, the queue and the time), and the worker logs one line, `poison message
dead-lettered: <reason>`, with the task name, task id, queue and content type, and counts it
in `doorbuster_task_dead_letters_total{reason}`. The reasons:

| reason | what came in |
| --- | --- |
| `oversized` | a body above `MAX_MESSAGE_BYTES` (checked before anything decodes it) |
| `undecodable` | a body its content type cannot decode (broken JSON) |
| `content_type_refused` | a content type other than JSON (pickle), never deserialised |
| `invalid_message` | a message Celery cannot read as a task (protocol errors) |
| `unknown_task` | a task name no module of this pool registers |
| `unknown_format` | headers that are not a table |

No body is ever logged (Celery's own lines dump up to 1 kB of it): it is untrusted and may
carry personal data. Pickle never runs: only JSON is accepted (`accept_content`), and kombu
checks the content type before anything deserialises the body.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from celery.worker.consumer import Consumer
from kombu.exceptions import ContentDisallowed

from shared.infra.settings import get_settings
from workers.metrics import DEAD_LETTERS

log = logging.getLogger(__name__)


def describe(message: Any) -> dict[str, Any]:
    headers = message.headers if isinstance(message.headers, dict) else {}
    return {
        "task": headers.get("task"),
        "task_id": headers.get("id") or message.properties.get("correlation_id"),
        "queue": (message.delivery_info or {}).get("routing_key"),
        "content_type": message.content_type,
        "bytes": len(message.body or b""),
    }


CELERY_HEART = "celery.worker.consumer.heart:Heart"
# Seconds between two tries to reach the broker again: 1, 2, 3, then 3 (Celery's: 2, 4, 6 ...
# up to 30). Each try also waits up to `broker_connection_timeout` (4 s) for the handshake, so
# a pool that lost its connection in a partition tried again at most 7 s after the path healed
# (with Celery's steps, 10 s after a 20 s partition, more after a longer one: fault n).
RECONNECT_INTERVALS = {"interval_start": 1, "interval_step": 1, "interval_max": 3}


class DeadLetteringConsumer(Consumer):
    class Blueprint(Consumer.Blueprint):
        # Worker-heartbeat events that never hold the event loop (workers/heart.py).
        default_steps = [
            "workers.heart:Heart" if step == CELERY_HEART else step
            for step in Consumer.Blueprint.default_steps
        ]

    def ensure_connected(self, conn: Any) -> Any:
        """Celery's reconnection loop, with shorter waits between tries."""
        conn.ensure_connection = functools.partial(conn.ensure_connection, **RECONNECT_INTERVALS)
        return super().ensure_connected(conn)

    def dead_letter(self, message: Any, reason: str, detail: str) -> None:
        """Reject without requeue (RabbitMQ moves it to `<queue>.dlq`), say why, count it."""
        facts = describe(message)
        log.error("poison message dead-lettered: %s: %s (%s)", reason, detail[:200], facts)
        message.reject_log_error(log, self.connection_errors, requeue=False)
        DEAD_LETTERS.labels(facts["queue"] or "unknown", facts["task"] or "unknown", reason).inc()

    def create_task_handler(self, *args: Any, **kwargs: Any) -> Any:
        handle = super().create_task_handler(*args, **kwargs)
        limit = get_settings().max_message_bytes

        def on_task_received(message: Any) -> None:
            size = len(message.body or b"")
            if size > limit:
                return self.dead_letter(
                    message, "oversized", f"{size} bytes, MAX_MESSAGE_BYTES is {limit}"
                )
            return handle(message)

        return on_task_received

    def on_decode_error(self, message: Any, exc: Exception) -> None:
        reason = "content_type_refused" if isinstance(exc, ContentDisallowed) else "undecodable"
        self.dead_letter(message, reason, f"{type(exc).__name__}: {exc}")

    def on_invalid_task(self, body: Any, message: Any, exc: Exception) -> None:
        reason = "content_type_refused" if isinstance(exc, ContentDisallowed) else "invalid_message"
        self.dead_letter(message, reason, f"{type(exc).__name__}: {exc}")

    def on_unknown_task(self, body: Any, message: Any, exc: Exception) -> None:
        self.dead_letter(message, "unknown_task", "no such task in this pool")
        if self.event_dispatcher and isinstance(message.headers, dict):
            task_id, name = message.headers.get("id"), message.headers.get("task")
            self.event_dispatcher.send(
                "task-failed", uuid=task_id, exception=f"NotRegistered({name!r})"
            )

    def on_unknown_message(self, body: Any, message: Any) -> None:
        self.dead_letter(message, "unknown_format", "not a Celery task message")
