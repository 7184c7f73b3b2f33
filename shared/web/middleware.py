"""The one middleware every request passes first: its correlation id, its metrics, its log line.

Pure ASGI (no BaseHTTPMiddleware task boundary), outermost, so it sees every answer: the body
limit's 413s and the guard's 401s included. It takes the caller's `X-Correlation-ID` (or makes
one), sets it for the request's logs and the tasks it causes, and returns it on the response.
Request count and latency are per route template; unmatched paths share one `unmatched` label,
so scanners cannot blow up the label set. One structured log line per request, except for
probes and metrics (a kubelet asks every few seconds).
"""

from __future__ import annotations

import time

import structlog
from fastapi import FastAPI
from prometheus_client import Counter, Histogram
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.infra.observability import set_correlation_id

log = structlog.get_logger("doorbuster.access")
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/readyz/traffic", "/metrics"})

REQUESTS = Counter(
    "doorbuster_http_requests_total", "HTTP requests", ["service", "method", "route", "status"]
)
LATENCY = Histogram(
    "doorbuster_http_request_seconds",
    "HTTP request latency",
    ["service", "method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)


class RequestTelemetry:
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
            self._record(scope, status, time.perf_counter() - started, correlation_id)

    def _record(self, scope: Scope, status: int, seconds: float, correlation_id: str) -> None:
        route = getattr(scope.get("route"), "path", None)
        method = scope["method"]
        LATENCY.labels(self.service, method, route or "unmatched").observe(seconds)
        REQUESTS.labels(self.service, method, route or "unmatched", str(status)).inc()
        if scope["path"] not in QUIET_PATHS:
            log.info(
                "http request",
                method=method,
                path=scope["path"],
                route=route,
                status=status,
                duration_ms=round(seconds * 1000, 1),
                correlation_id=correlation_id,
            )


def install_telemetry(app: FastAPI, service: str) -> None:
    """Add last, so it is the outermost middleware."""
    app.add_middleware(RequestTelemetry, service=service)
