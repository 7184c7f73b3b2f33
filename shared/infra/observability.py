"""Logging, correlation ids, metrics and Sentry: one setup for services and workers.

A correlation id starts at the HTTP request (`X-Correlation-ID`, or a new one), is stored with
every outbox row, travels in the Celery message headers and is restored in the task, so one
grep follows an order from checkout to its mail.
"""

from __future__ import annotations

import logging
import re
import sys
import uuid
from collections.abc import Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING

import sentry_sdk
import structlog

from shared.infra.redact import redact, scrub_sentry_event

_CORRELATION_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
if TYPE_CHECKING:
    from sentry_sdk.integrations import Integration

    from shared.infra.settings import ObservabilitySettings

_correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)


def current_correlation_id() -> str | None:
    return _correlation_id.get()


def set_correlation_id(value: str | None = None) -> str:
    """Adopt `value` (a client's `X-Correlation-ID`) if it looks like an id, else a new one.

    It is logged and stored with outbox rows (64 characters at most), so nothing else passes.
    """
    if not value or not _CORRELATION_ID.fullmatch(value):
        value = uuid.uuid4().hex
    _correlation_id.set(value)
    return value


def _add_correlation_id(_: object, __: str, event: dict[str, object]) -> dict[str, object]:
    correlation_id = _correlation_id.get()
    if correlation_id and "correlation_id" not in event:
        event["correlation_id"] = correlation_id
    return event


LOG_EXTRA_FIELDS = ("duration_ms",)


def configure_logging(process: str, level: str = "INFO", json: bool = True) -> None:
    """Route stdlib logging through structlog: one JSON object per line on stderr."""
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    )

    def add_process(_: object, __: str, event: dict[str, object]) -> dict[str, object]:
        # A processor, not a context variable: request tasks and worker threads do not
        # inherit the context configure_logging ran in.
        event.setdefault("process", process)
        return event

    shared_processors: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        add_process,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_correlation_id,
        # Fields our own stdlib lines pass as `extra` (other libraries' extras stay out).
        structlog.stdlib.ExtraAdder(allow=LOG_EXTRA_FIELDS),
    ]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared_processors,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redact,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiormq", "aio_pika", "httpx", "stripe", "mail.log"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # uvicorn brings its own handlers; through ours its lines are JSON and redacted too.
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # Its access log stays off (`shared.web.middleware` writes one line per request): uvicorn logs
    # one whenever the logger has a handler up its tree, and used to double every request's
    # logging cost whatever `--no-access-log` said.
    access = logging.getLogger("uvicorn.access")
    access.handlers[:] = []
    access.propagate = False
    structlog.configure(
        processors=[*shared_processors, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def mask_email(address: str) -> str:
    """`ann@example.com` -> `a***@example.com`: logs never carry a full address."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"


def init_sentry(
    settings: ObservabilitySettings, component: str, integrations: Sequence[Integration]
) -> bool:
    """Report errors to Sentry when SENTRY_DSN is set; returns whether it is on."""
    if not settings.sentry_dsn:
        return False
    sentry_sdk.init(
        dsn=settings.sentry_dsn,
        environment=settings.doorbuster_env,
        integrations=list(integrations),
        traces_sample_rate=settings.sentry_traces_sample_rate,
        send_default_pii=False,  # customer emails stay out of error reports
        before_send=scrub_sentry_event,  # ... and out of bodies, task kwargs and messages
        # A frame's locals are reprs of rows and messages, where a name cannot be told apart.
        include_local_variables=False,
    )
    sentry_sdk.set_tag("component", component)
    return True


def tag_order(order_id: str | None) -> None:
    """Tag what this request or task reports with its order: a Sentry tag and a log field.

    Both live in context variables (Sentry's scope is forked per request and per task by its
    FastAPI and Celery integrations), so the tag never leaks to the next request.
    """
    if not order_id:
        return
    sentry_sdk.set_tag("order_id", order_id)
    structlog.contextvars.bind_contextvars(order_id=order_id)
