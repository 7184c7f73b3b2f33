"""The shell every Celery task is: validate the payload, restore the correlation id, run one
async handler on the worker's loop.

A payload that does not validate is rejected without requeue, so RabbitMQ dead-letters it to
`<queue>.dlq` with the reason in the worker log; it never half-runs. Every run logs one line,
`task succeeded` (or `task raised ...`), with the task name, its id, the order id (when the
payload has one), the correlation id and its `duration_ms`, so one grep follows an order. One
line, not a `task started` as well: each line costs a pool CPU (measured, docs/benchmarks.md),
and `celery inspect active` shows what is running now.

A countdown retry is a publish from the pool thread (Celery's kombu producer). On a broker
memory or disk alarm that publish is blocked: the confirm never comes. It is bounded here by
`RETRY_CONFIRM_TIMEOUT` (and the transport's read and write timeouts, workers/app.py, for the
channel and connection closes that follow), and a retry that could not be published requeues
its message instead of dead-lettering it (what Celery does: `Reject(requeue=False)`): the
thread is free again, and the task runs again once a thread takes it.

A redelivered message (its worker died, or it was requeued) runs under the rules of
`shared.messaging.deliveries`: one at a time per process, counted, and dead-lettered once it has
run `TASK_DELIVERY_LIMIT` times, so a message that kills its worker every time does not loop.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import structlog
from celery import Task, shared_task
from celery.exceptions import Reject
from pydantic import ValidationError

from shared.infra.aio import worker_loop
from shared.infra.db import is_transient
from shared.infra.observability import set_correlation_id, tag_order
from shared.infra.settings import get_settings
from shared.messaging.deliveries import SUSPECTS, DeliveryCounts, delivery_counts
from shared.messaging.message import Message
from shared.messaging.wire import CORRELATION_HEADER

log = logging.getLogger(__name__)
M = TypeVar("M", bound=Message)
# Seconds a retry's publish waits for its confirm (Celery's default: forever).
RETRY_CONFIRM_TIMEOUT = 5.0
# Enough for a database or broker restart of a few minutes: 1, 2, 4 ... 30 s (jittered).
INFRASTRUCTURE_RETRIES = 20


def infrastructure_backoff(retries: int) -> float:
    return random.uniform(0.5, min(30.0, 2.0**retries))


class ShellTask(Task):
    """Every task's base: a retry's publish is bounded, and one that fails requeues."""

    def retry(self, *args: Any, **options: Any) -> Any:  # type: ignore[override]
        options.setdefault("confirm_timeout", RETRY_CONFIRM_TIMEOUT)
        # No reconnect-and-republish loop (each try would wait for its confirm again):
        # requeueing covers a failure, whatever it was.
        options.setdefault("retry", False)
        try:
            return super().retry(*args, **options)
        except Reject as rejected:
            if rejected.requeue or not isinstance(rejected.reason, BaseException):
                raise
            log.warning(
                "%s[%s]: its retry could not be published (%r), requeued",
                self.name,
                self.request.id,
                rejected.reason,
            )
            if _redelivered(self):
                # Put back by this worker, not killed: this run does not count.
                _counts(self).forgive(self.request.id)
            raise Reject(rejected.reason, requeue=True) from rejected.reason


def _redelivered(task: Task) -> bool:
    return bool((getattr(task.request, "delivery_info", None) or {}).get("redelivered"))


def _counts(task: Task) -> DeliveryCounts:
    return delivery_counts(task.app.main or "doorbuster", get_settings().delivery_counts_dir)


def _count_run(task: Task) -> None:
    """Count this run of a redelivered message; past the limit, dead-letter it instead."""
    limit = get_settings().task_delivery_limit
    runs = _counts(task).count(task.request.id)
    if runs >= limit:
        # `runs` redelivered runs, and the first delivery: it ran `limit` times already.
        log.error(
            "poison message dead-lettered: delivery_limit: redelivered %d times, each time its "
            "worker died before it finished (TASK_DELIVERY_LIMIT is %d) (%s[%s])",
            runs,
            limit,
            task.name,
            task.request.id,
        )
        raise Reject(f"delivery_limit: delivered {runs + 1} times", requeue=False)


GiveUp = Callable[[M, Exception], Coroutine[Any, Any, Any]]


def handles(
    message: type[M], give_up: GiveUp[M] | None = None, **options: Any
) -> Callable[[Callable[[M], Coroutine[Any, Any, Any]]], Task]:
    """Register `handler(message)` (async) as the Celery task of `message`, with `options`
    (its retry policy: `autoretry_for`, `max_retries`, backoff).

    `give_up(message, error)` runs once, when the policy's last try fails with one of its
    `autoretry_for` errors, before the message is dead-lettered: the place to record a final
    failure. Handlers never read Celery's attempt count.
    """

    def register(handler: Callable[[M], Coroutine[Any, Any, Any]]) -> Task:
        @shared_task(name=message.name, bind=True, base=ShellTask, **options)
        def shell(self: Task, *args: Any, **kwargs: Any) -> None:
            headers = getattr(self.request, "headers", None) or {}
            set_correlation_id(
                headers.get(CORRELATION_HEADER) or getattr(self.request, CORRELATION_HEADER, None)
            )
            order_id = kwargs.get("order_id")
            context = {"task": message.name, "task_id": self.request.id}
            if isinstance(order_id, str):
                context["order_id"] = order_id
            elif isinstance(order_ids := kwargs.get("order_ids"), list):
                # A gathered message (several orders' commits): a grep of any of their ids
                # finds its line.
                context["order_ids"] = order_ids
            with structlog.contextvars.bound_contextvars(**context):
                tag_order(context.get("order_id"))
                run = _Handler(message, handler, give_up)
                if not _redelivered(self):
                    _run(self, run, args, kwargs)
                    return
                with SUSPECTS:
                    _count_run(self)
                    _run(self, run, args, kwargs)

        shell.__doc__ = handler.__doc__
        return shell

    return register


@dataclass(frozen=True)
class _Handler(Generic[M]):
    message: type[M]
    run: Callable[[M], Coroutine[Any, Any, Any]]
    give_up: GiveUp[M] | None


def is_last_try(task: Task, error: BaseException) -> bool:
    """Whether `error` ends the task's own retry policy now (Celery dead-letters it next)."""
    retried_for = tuple(getattr(task, "autoretry_for", None) or ())
    return (
        isinstance(error, retried_for)
        and task.max_retries is not None
        and (task.request.retries or 0) >= task.max_retries
    )


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


def _run(task: Task, handler: _Handler[Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    name = handler.message.name
    started = time.perf_counter()
    if args:
        log.error("positional arguments for %s[%s], dead-lettering", name, task.request.id)
        raise Reject("invalid payload: positional arguments", requeue=False)
    try:
        command = handler.message.model_validate(kwargs)
    except ValidationError as exc:
        reason = invalid_payload_reason(exc)
        log.error("invalid payload for %s[%s], dead-lettering: %s", name, task.request.id, reason)
        raise Reject(reason, requeue=False) from exc
    try:
        worker_loop.run(handler.run(command))
    except Exception as error:
        if not infrastructure_failure(task, error):
            log.warning(
                "task raised %s: retried or dead-lettered per its policy", type(error).__name__
            )
            if handler.give_up is not None and is_last_try(task, error):
                worker_loop.run(handler.give_up(command, error))
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
