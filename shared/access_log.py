"""One structured log line per API request, with its correlation id.

Pure ASGI (no BaseHTTPMiddleware task boundary), installed outside the observability
middleware: it reads the correlation id from the `X-Correlation-ID` response header that
middleware sets, so the line carries the same id as every task the request caused. Probe and
metrics requests are not logged (a kubelet asks every few seconds).
"""

from __future__ import annotations

import time
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger("doorbuster.access")
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


class AccessLog:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in QUIET_PATHS:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        seen: dict[str, Any] = {"status": 500, "correlation_id": None}

        async def observe(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                for name, value in message.get("headers", []):
                    if name.lower() == b"x-correlation-id":
                        seen["correlation_id"] = value.decode("latin-1")
            await send(message)

        try:
            await self.app(scope, receive, observe)
        finally:
            route = scope.get("route")
            log.info(
                "http request",
                method=scope["method"],
                path=scope["path"],
                route=getattr(route, "path", None),
                status=seen["status"],
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
                correlation_id=seen["correlation_id"],
            )
