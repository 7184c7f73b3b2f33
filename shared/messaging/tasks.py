"""The shell every Celery task is: validate the payload, restore the correlation id, run one
async handler on the worker's loop.

A payload that does not validate is rejected without requeue, so RabbitMQ dead-letters it to
`<queue>.dlq` with the reason in the worker log; it never half-runs. Every run logs one line,
`task succeeded` (or `task raised ...`), with the task name, its id, the order id (when the
payload has one), the correlation id and its `duration_ms`, so one grep follows an order. One
line, not a `task started` as well: each line costs a pool CPU (measured, docs/benchmarks.md),
and `celery inspect active` shows what is running now.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Coroutine
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog
from celery import Task, shared_task
from celery.exceptions import Reject
from pydantic import BaseModel, ValidationError

from shared.infra.aio import worker_loop
from shared.infra.db import is_transient
from shared.infra.observability import set_correlation_id, tag_order
from shared.messaging.wire import CORRELATION_HEADER

log = logging.getLogger(__name__)
P = TypeVar("P", bound=BaseModel)
# Enough for a database or broker restart of a few minutes: 1, 2, 4 ... 30 s (jittered).
INFRASTRUCTURE_RETRIES = 20


def infrastructure_backoff(retries: int) -> float:
    return random.uniform(0.5, min(30.0, 2.0**retries))


@dataclass(frozen=True)
class Attempt:
    retries: int
    max_retries: int | None

    @property
    def is_last(self) -> bool:
        return self.max_retries is not None and self.retries >= self.max_retries


_attempt: ContextVar[Attempt | None] = ContextVar("attempt", default=None)


def current_attempt() -> Attempt:
    """Which delivery of the running task this is (a handler may record a final failure)."""
    return _attempt.get() or Attempt(0, None)


def task(
    name: str,
    payload: type[P],
    **options: Any,
) -> Callable[[Callable[[P], Coroutine[Any, Any, Any]]], Task]:
    """Register `handler(payload)` (async) as Celery task `name` with `options` (retry policy)."""

    def register(handler: Callable[[P], Coroutine[Any, Any, Any]]) -> Task:
        @shared_task(name=name, bind=True, **options)
        def shell(self: Task, *args: Any, **kwargs: Any) -> None:
            headers = getattr(self.request, "headers", None) or {}
            set_correlation_id(
                headers.get(CORRELATION_HEADER) or getattr(self.request, CORRELATION_HEADER, None)
            )
            _attempt.set(Attempt(self.request.retries or 0, self.max_retries))
            order_id = kwargs.get("order_id")
            context = {"task": name, "task_id": self.request.id}
            if isinstance(order_id, str):
                context["order_id"] = order_id
            with structlog.contextvars.bound_contextvars(**context):
                tag_order(context.get("order_id"))
                _run(self, handler, payload, name, args, kwargs)

        shell.__doc__ = handler.__doc__
        return shell

    return register


def invalid_payload_reason(exc: ValidationError) -> str:
    """Which fields were wrong and how, never their values (they may be personal data)."""
    problems = [
        f"{'.'.join(str(part) for part in error['loc']) or '(payload)'}: {error['msg']}"
        for error in exc.errors(include_input=False, include_url=False)
    ]
    return "invalid payload: " + "; ".join(problems)[:500]


def infrastructure_failure(task: Task, error: BaseException) -> bool:
    """Whether the shell retries `error` as the database or network being away.

    An error the task names in `autoretry_for` (a provider or SMTP failure, often with a
    network error inside) follows the task's own policy instead, whose last try dead-letters.
    """
    if isinstance(error, tuple(getattr(task, "autoretry_for", None) or ())):
        return False
    return is_transient(error)


def _run(
    task: Task,
    handler: Callable[[P], Coroutine[Any, Any, Any]],
    payload: type[P],
    name: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> None:
    started = time.perf_counter()
    if args:
        log.error("positional arguments for %s[%s], dead-lettering", name, task.request.id)
        raise Reject("invalid payload: positional arguments", requeue=False)
    try:
        command = payload.model_validate(kwargs)
    except ValidationError as exc:
        reason = invalid_payload_reason(exc)
        log.error("invalid payload for %s[%s], dead-lettering: %s", name, task.request.id, reason)
        raise Reject(reason, requeue=False) from exc
    try:
        worker_loop.run(handler(command))
    except Exception as error:
        if not infrastructure_failure(task, error):
            log.warning(
                "task raised %s: retried or dead-lettered per its policy", type(error).__name__
            )
            raise
        # The database or the network is away (restart, failover): wait and retry, with
        # exponential backoff and jitter, instead of failing the task.
        log.warning("%s hit a transient error, retrying: %r", name, error)
        raise task.retry(
            exc=error,
            countdown=infrastructure_backoff(task.request.retries or 0),
            max_retries=INFRASTRUCTURE_RETRIES,
        ) from error
    duration_ms = round(1000 * (time.perf_counter() - started), 1)
    log.info("task succeeded", extra={"duration_ms": duration_ms})
