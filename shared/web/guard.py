"""What every request passes before a route sees it: a body size limit, then a per-route guard.

`BodyLimit` (ASGI middleware) answers 413 from `Content-Length` alone, or as soon as a chunked
body passes the limit, before anything parses it; a body within the limit is buffered (it is
small by definition) and replayed to the app.

`RouteGuard` (ASGI middleware, outside `BodyLimit`) checks what the route a request is for
demands before anything reads its body: the bearer key (401/403, so a caller without a valid
key learns nothing else), a JSON content type for routes that take a JSON body (415), and no
control characters in the path or query string (422: PostgreSQL cannot store a NUL, and ids
never contain one). Unknown paths and methods go on to the router (404, 405).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.web.auth import Auth, Role, required_role
from shared.web.problems import Problem, problem_response, validation_problem

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class BodyLimit:
    """`bulk_paths` (exact paths, e.g. the 10,000-address subscriber import) get `bulk_bytes`."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        bulk_paths: frozenset[str] = frozenset(),
        bulk_bytes: int = 0,
    ):
        self.app, self.max_bytes = app, max_bytes
        self.bulk_paths, self.bulk_bytes = bulk_paths, max(bulk_bytes, max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope) if scope["type"] == "http" else None
        if headers is None or not _has_body(headers):
            await self.app(scope, receive, send)
            return
        limit = self.bulk_bytes if scope.get("path") in self.bulk_paths else self.max_bytes
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._too_large(scope, receive, send, limit)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._too_large(scope, receive, send, limit)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(b"".join(chunks), receive), send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        # No `Connection: close`: the server discards the rest of the body as it arrives (it
        # is not buffered) and the client, still sending, can read this answer. Closing with
        # unread data makes the kernel reset the connection, and the client lose the answer.
        response = problem_response(
            413, "content-too-large", f"The request body is larger than {limit} bytes."
        )
        await response(scope, receive, send)


def _has_body(headers: Headers) -> bool:
    return "transfer-encoding" in headers or headers.get("content-length", "0") not in ("", "0")


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replayed() -> dict[str, object]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # what follows the body: a disconnect

    return replayed


def is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    message = Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


@dataclass(frozen=True)
class _Rule:
    route: Any  # for metrics: the route template of an answer the guard gives itself
    path: re.Pattern[str]
    methods: frozenset[str]
    role: Role | None
    json_body: bool


class RouteGuard:
    """Checks each request against the rule of the route it will reach, before the body.

    It resolves the route itself (the app's routes in order, path regex and method), because
    FastAPI gives no hook between routing and body parsing. A request no rule matches goes on
    untouched: the router answers it (404, 405).
    """

    def __init__(self, app: ASGIApp):
        self.app = app
        self._rules: list[_Rule] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            rule, allowed = self._rule_for(scope)
            if rule is None and allowed:
                await _method_not_allowed(allowed)(scope, receive, send)
                return
            if rule is not None:
                answer = self._refusal(rule, scope)
                if answer is not None:
                    scope["route"] = rule.route
                    await answer(scope, receive, send)
                    return
        await self.app(scope, receive, send)

    def _refusal(self, rule: _Rule, scope: Scope) -> JSONResponse | None:
        try:
            self._check(rule, scope)
        except Problem as problem:
            return problem_response(problem.status, problem.slug, problem.detail, problem.headers)
        errors = control_characters(scope)
        return validation_problem(errors) if errors else None

    @staticmethod
    def _check(rule: _Rule, scope: Scope) -> None:
        headers = Headers(scope=scope)
        if rule.role is not None:
            auth: Auth = scope["app"].state.auth
            # The route's dependency takes the caller from here (`shared.web.auth`).
            scope.setdefault("state", {})["caller"] = auth.check(
                headers.get("authorization"), rule.role
            )
        if rule.json_body and _has_body(headers) and not is_json(headers.get("content-type")):
            raise Problem(
                415,
                "unsupported-media-type",
                "This route takes `application/json` only.",
                headers={"Accept-Post": "application/json"},
            )

    def _rule_for(self, scope: Scope) -> tuple[_Rule | None, set[str]]:
        """The rule of the route this request reaches, and the methods its path allows."""
        if self._rules is None:
            self._rules = list(_rules(scope["app"]))
        path, method = scope["path"], scope["method"]
        allowed: set[str] = set()
        for rule in self._rules:
            if rule.path.match(path):
                if method in rule.methods:
                    return rule, allowed
                allowed |= rule.methods
        return None, allowed


def _method_not_allowed(allowed: set[str]) -> Any:
    """405 with every method of the path in `Allow`: Starlette lists only the first route's,
    though `GET /v1/orders` and `POST /v1/orders` are two routes."""
    methods = ", ".join(sorted(allowed))
    return problem_response(
        405, "method-not-allowed", f"This path answers {methods} only.", {"Allow": methods}
    )


def _rules(app: FastAPI) -> Iterator[_Rule]:
    for route in api_routes(app):
        yield _Rule(
            route=route.original_route,
            path=route.path_regex,
            methods=frozenset(route.methods or ()),
            role=required_role(route),
            # Our routes take JSON bodies only (no forms, no files).
            json_body=route.body_field is not None,
        )


def api_routes(app: FastAPI) -> Iterator[Any]:
    """Every API route of `app` as the router serves it (included routers' prefixes and
    dependencies applied): objects with `path`, `path_regex`, `methods`, `dependant`,
    `body_field`."""
    for route in iter_route_contexts(app.routes):
        if getattr(route, "dependant", None) is not None:
            yield route


def control_characters(scope: Scope) -> list[dict[str, str]]:
    """Fields of the path or query string that hold control characters."""
    message = "must not contain control characters"
    errors = []
    if _CONTROL.search(scope.get("path", "")):
        errors.append({"field": "path", "message": message})
    query = scope.get("query_string", b"").decode("latin-1")
    for name, value in parse_qsl(query, keep_blank_values=True):
        if _CONTROL.search(name) or _CONTROL.search(value):
            errors.append({"field": f"query.{name}", "message": message})
    return errors
