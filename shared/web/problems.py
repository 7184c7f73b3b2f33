"""RFC 9457 problem documents: the one shape of every error the services answer.

`type` is `https://doorbuster.dev/problems/<slug>`; the slugs are catalogued in docs/api.md.
Validation errors add `errors: [{field, message}]`. A database that cannot be reached is a
503 with `Retry-After` (the request changed nothing and may be retried), never a 500.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.infra.db import is_transient

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://doorbuster.dev/problems/"
UNAVAILABLE_RETRY_AFTER = "2"


class FieldError(BaseModel):
    field: str = Field(description="Where: `body.items.0.quantity`, `query.limit`, ...")
    message: str


class ProblemDetails(BaseModel):
    """An RFC 9457 problem document (`application/problem+json`)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="`https://doorbuster.dev/problems/<slug>`; see docs/api.md")
    title: str
    status: int = Field(ge=400, le=599)
    detail: str
    errors: list[FieldError] | None = Field(
        default=None, description="Validation errors only: the offending fields."
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


def field_name(location: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(part) for part in location)


def validation_problem(errors: list[dict[str, str]]) -> JSONResponse:
    return problem_response(
        422, "validation-error", "The request is not valid; see `errors`.", errors=errors
    )


# A connection that failed, was refused, timed out or was dropped: the database (or the pool
# in front of it) is unavailable, not the request wrong.
_UNAVAILABLE = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,
    sa_exc.DisconnectionError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    ConnectionError,
    TimeoutError,
    OSError,
)
# Text PostgreSQL cannot store (NUL, lone surrogates): the client's input, not our fault.
_UNSTORABLE_TEXT = (
    asyncpg.CharacterNotInRepertoireError,
    asyncpg.UntranslatableCharacterError,
    UnicodeEncodeError,
)


_UNPARSEABLE = (UnicodeDecodeError, ValueError, RecursionError)


def _causes(exc: BaseException) -> list[BaseException]:
    chain, seen = [], set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append(current)
        current = current.__cause__ or current.__context__
    for error in list(chain):
        original = getattr(error, "orig", None)
        if isinstance(original, BaseException):
            chain.append(original)
    return chain


def database_unavailable(exc: BaseException) -> bool:
    """What a worker would retry (shared.infra.db.is_transient: a restart's "shutting down", an
    admin shutdown that cut the session) is a 503 here: the request changed nothing."""
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    if is_transient(exc):
        return True
    return any(isinstance(cause, _UNAVAILABLE) for cause in _causes(exc))


def unstorable_text(exc: BaseException) -> bool:
    return any(isinstance(cause, _UNSTORABLE_TEXT) for cause in _causes(exc))


def classify(exc: BaseException) -> JSONResponse:
    """The problem an unexpected exception becomes: 503, 422 or, for a real bug, 500."""
    if database_unavailable(exc):
        log.warning("database unavailable: %s", type(exc).__name__)
        return problem_response(
            503,
            "service-unavailable",
            "A backing service is unavailable; nothing was changed. Retry later.",
            {"Retry-After": UNAVAILABLE_RETRY_AFTER},
        )
    if unstorable_text(exc):
        return validation_problem(
            [{"field": "body", "message": "text contains characters that cannot be stored"}]
        )
    log.error("unhandled error", exc_info=exc)
    return problem_response(500, "internal-error", "An unexpected error occurred.")


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(_: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc.status, exc.slug, exc.detail, exc.headers, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_problem(
            [{"field": field_name(error["loc"]), "message": error["msg"]} for error in exc.errors()]
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and isinstance(exc.__cause__, _UNPARSEABLE):
            # FastAPI's "error parsing the body" (not UTF-8, too deep, too many digits): the
            # body is as invalid as broken JSON, which FastAPI itself answers with 422.
            return validation_problem([{"field": "body", "message": "is not valid UTF-8 JSON"}])
        phrase = HTTPStatus(exc.status_code).phrase
        slug = phrase.lower().replace(" ", "-")
        detail = exc.detail if isinstance(exc.detail, str) else phrase
        headers = dict(exc.headers or {})
        if exc.status_code == 404 and detail == phrase:
            detail = "There is no route at this path; see /docs."
        elif exc.status_code == 405:
            detail = f"This path answers {headers.get('Allow', 'other methods')} only."
        return problem_response(exc.status_code, slug, detail, headers)

    # Handled inside the app (no traceback re-raised to the server) for the kinds a backing
    # service produces; anything else still reaches the last-resort handler below.
    for kind in (sa_exc.SQLAlchemyError, asyncpg.PostgresError, OSError, UnicodeError):

        @app.exception_handler(kind)
        async def _backing(_: Request, exc: Exception) -> JSONResponse:
            return classify(exc)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        return classify(exc)
