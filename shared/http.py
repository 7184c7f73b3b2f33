"""What every HTTP service shares: problem+json errors, bearer auth, probes, metrics.

Errors follow RFC 9457: `application/problem+json` with `type`, `title`, `status`, `detail`
(and `errors` listing offending fields on validation failures), for every status the app
produces, 404/405 included.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.config import Settings
from shared.observability import set_correlation_id

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://doorbuster.dev/problems/"

REQUESTS = Counter(
    "doorbuster_http_requests_total", "HTTP requests", ["service", "method", "route", "status"]
)
LATENCY = Histogram(
    "doorbuster_http_request_seconds",
    "HTTP request latency",
    ["service", "method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)


class Problem(Exception):
    """Raise from a route or handler to answer with a problem+json document."""

    def __init__(
        self,
        status: int,
        slug: str,
        detail: str,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ):
        super().__init__(detail)
        self.status, self.slug, self.detail = status, slug, detail
        self.headers, self.extra = headers or {}, extra


def problem_response(
    status: int,
    slug: str,
    detail: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = {
        "type": PROBLEM_BASE + slug,
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(_: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc.status, exc.slug, exc.detail, exc.headers, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": ".".join(str(part) for part in error["loc"]), "message": error["msg"]}
            for error in exc.errors()
        ]
        return problem_response(
            422, "validation-error", "The request is not valid; see `errors`.", errors=errors
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        slug = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "-")
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        return problem_response(exc.status_code, slug, detail, dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return problem_response(500, "internal-error", "An unexpected error occurred.")


_bearer = HTTPBearer(auto_error=False, description="Storefront or admin API key")


class Auth:
    """Bearer-key checks; keys compared in constant time, never logged."""

    def __init__(self, settings: Settings):
        self._storefront = settings.storefront_keys()
        self._admin = settings.admin_keys()

    @staticmethod
    def _matches(key: str, keys: tuple[str, ...]) -> bool:
        found = False
        for candidate in keys:
            found |= hmac.compare_digest(key.encode(), candidate.encode())
        return found

    def role_of(self, key: str | None) -> str | None:
        if not key:
            return None
        if self._matches(key, self._admin):
            return "admin"
        if self._matches(key, self._storefront):
            return "storefront"
        return None


def _auth(request: Request) -> Auth:
    return request.app.state.auth


def _role(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> tuple[str, str]:
    key = credentials.credentials if credentials else None
    role = _auth(request).role_of(key)
    if role is None or key is None:
        raise Problem(
            401,
            "unauthorized",
            "A valid API key is required: `Authorization: Bearer <key>`.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return role, key


def require_storefront(role: Annotated[tuple[str, str], Depends(_role)]) -> str:
    """Storefront or admin key; returns the key (idempotency keys are scoped to it)."""
    return role[1]


def require_admin(role: Annotated[tuple[str, str], Depends(_role)]) -> str:
    if role[0] != "admin":
        raise Problem(403, "forbidden", "This route needs an admin API key.")
    return role[1]


StorefrontKey = Annotated[str, Depends(require_storefront)]
AdminKey = Annotated[str, Depends(require_admin)]


def install_observability(app: FastAPI, service: str) -> None:
    """Correlation ids and per-route request metrics."""

    @app.middleware("http")
    async def _observe(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        correlation_id = set_correlation_id(request.headers.get("x-correlation-id"))
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        LATENCY.labels(service, request.method, path).observe(time.perf_counter() - started)
        REQUESTS.labels(service, request.method, path, str(response.status_code)).inc()
        response.headers["X-Correlation-ID"] = correlation_id
        return response


def install_probes(app: FastAPI, readiness: Callable[[], Awaitable[dict[str, bool]]]) -> None:
    @app.get("/healthz", tags=["probes"], summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["probes"], summary="The database and the broker answer")
    async def readyz() -> JSONResponse:
        checks = await readiness()
        ready = all(checks.values())
        return JSONResponse(
            {"status": "ready" if ready else "unavailable", "checks": checks},
            status_code=200 if ready else 503,
        )

    @app.get("/metrics", tags=["probes"], summary="Prometheus metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
