"""What every HTTP service shares: problem+json errors, bearer auth, probes, metrics.

Errors follow RFC 9457 (`shared.problems`), auth is bearer keys (`shared.auth`), requests pass
a body limit and a route guard (`shared.guard`); this module adds the probes and per-route
request metrics, and re-exports what routes import.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.auth import (
    AdminKey,
    Auth,
    Role,
    StorefrontKey,
    require_admin,
    require_storefront,
    scope_to_filter,
)
from shared.observability import set_correlation_id
from shared.problems import (
    PROBLEM_BASE,
    PROBLEM_JSON,
    Problem,
    ProblemDetails,
    install_problem_handlers,
    problem_response,
)

__all__ = [
    "PROBLEM_BASE",
    "PROBLEM_JSON",
    "AdminKey",
    "Auth",
    "Problem",
    "ProblemDetails",
    "Role",
    "StorefrontKey",
    "install_observability",
    "install_probes",
    "install_problem_handlers",
    "problem_response",
    "require_admin",
    "require_storefront",
    "scope_to_filter",
]

REQUESTS = Counter(
    "doorbuster_http_requests_total", "HTTP requests", ["service", "method", "route", "status"]
)
LATENCY = Histogram(
    "doorbuster_http_request_seconds",
    "HTTP request latency",
    ["service", "method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)


class Observe:
    """Correlation id in and out, and request count and latency per route template.

    Pure ASGI (no BaseHTTPMiddleware): it sees every answer, the 413s and the guard's 401s
    included. Unmatched paths share one `unmatched` label, so scanners cannot blow up the
    label set.
    """

    def __init__(self, app: ASGIApp, service: str):
        self.app, self.service = app, service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        correlation_id = set_correlation_id(Headers(scope=scope).get("x-correlation-id"))
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message).append("X-Correlation-ID", correlation_id)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            method = scope["method"]
            LATENCY.labels(self.service, method, route).observe(time.perf_counter() - started)
            REQUESTS.labels(self.service, method, route, str(status)).inc()


def install_observability(app: FastAPI, service: str) -> None:
    app.add_middleware(Observe, service=service)


_NOT_READY = {
    "description": "The database or the broker does not answer (`checks` says which)",
    "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}},
}
_METRICS = {"description": "Prometheus text format", "content": {"text/plain": {}}}


def install_probes(app: FastAPI, readiness: Callable[[], Awaitable[dict[str, bool]]]) -> None:
    @app.get("/healthz", tags=["probes"], summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["probes"],
        summary="The database and the broker answer",
        responses={503: _NOT_READY},
    )
    async def readyz() -> dict[str, Any]:
        checks = await readiness()
        if not all(checks.values()):
            down = ", ".join(name for name, ok in checks.items() if not ok)
            raise Problem(
                503,
                "not-ready",
                f"Not ready: {down} not answering.",
                {"Retry-After": "1"},
                checks=checks,
            )
        return {"status": "ready", "checks": checks}

    @app.get(
        "/metrics",
        tags=["probes"],
        summary="Prometheus metrics",
        response_class=Response,
        responses={200: _METRICS},
    )
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
