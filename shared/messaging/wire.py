"""Celery protocol 2 messages, built without Celery so async code can publish them.

The FastAPI services must not call Celery's blocking client inside the event loop, so they
publish with aio-pika; this module gives the body, headers and properties a Celery 5 worker
expects (see celery/app/amqp.py `as_task_v2`). Bodies are JSON only: no pickle anywhere.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson

from shared.messaging.message import Message, route_of
from shared.messaging.topology import QueueName

CORRELATION_HEADER = "doorbuster_correlation_id"
# Epoch seconds (float) at publish time: the worker measures queue wait from it.
PUBLISHED_AT_HEADER = "doorbuster_published_at"
ORIGIN = "doorbuster-publisher"


@dataclass(frozen=True)
class OutgoingTask:
    """A task to send: its name, JSON-able arguments and a stable id (the outbox row keeps it).

    Built from a message (`OutgoingTask.of`) everywhere but in tests of what the pools refuse,
    which need a body no message class would produce."""

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    correlation_id: str | None = None

    @classmethod
    def of(cls, message: Message, correlation_id: str | None = None) -> OutgoingTask:
        return cls(message.name, message.kwargs(), correlation_id=correlation_id)

    @property
    def queue(self) -> QueueName:
        return route_of(self.name).queue

    @property
    def priority(self) -> int:
        return route_of(self.name).priority


def celery_body(task: OutgoingTask) -> bytes:
    embed = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
    return orjson.dumps([[], task.kwargs, embed])  # Celery wants positional args: none


def celery_headers(task: OutgoingTask) -> dict[str, Any]:
    headers: dict[str, Any] = {
        "lang": "py",
        "task": task.name,
        "id": task.id,
        "shadow": None,
        "eta": None,
        "expires": None,
        "group": None,
        "group_index": None,
        "retries": 0,
        "timelimit": [None, None],
        "root_id": task.id,
        "parent_id": None,
        "argsrepr": "[]",
        "kwargsrepr": _kwargs_repr(task.kwargs),
        "origin": ORIGIN,
        "ignore_result": True,
    }
    if task.correlation_id:
        headers[CORRELATION_HEADER] = task.correlation_id
    return headers


def _kwargs_repr(kwargs: dict[str, Any]) -> str:
    # Only the keys: payloads may carry email addresses that must not reach logs or Flower.
    return "{" + ", ".join(f"{key!r}: ..." for key in kwargs) + "}"
