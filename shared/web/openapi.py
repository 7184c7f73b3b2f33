"""The OpenAPI document, completed from what the app already knows about each route.

FastAPI documents bodies, parameters and the bearer schemes by itself; this adds every error
a route can answer, each an `application/problem+json` `ProblemDetails`: 401/403 from the key
the route needs, 413/415 where it takes a body, 422 where it takes input, 503 (with
`Retry-After`) where it touches the database or sheds load, 500 everywhere. Routes written
later get the same treatment without doing anything.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi

from shared.web.auth import Role, required_role
from shared.web.guard import api_routes
from shared.web.problems import PROBLEM_JSON, ProblemDetails

_REF = {"$ref": "#/components/schemas/ProblemDetails"}
_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    }
}
_INVALID = "Invalid input: `errors` lists the offending fields"
_WWW_AUTHENTICATE = {"WWW-Authenticate": {"schema": {"type": "string"}, "required": True}}


def problem_statuses(route: Any) -> dict[int, str]:
    """The errors `route` can answer besides those it declares itself."""
    role = required_role(route)
    statuses = {500: "Unexpected error (a bug: please report it)"}
    if route.dependant.query_params and any(
        param.name == "cursor" for param in route.dependant.query_params
    ):
        statuses[400] = "A cursor this API did not issue"
    if role is not None:
        statuses[401] = "No valid API key (`Authorization: Bearer <key>`)"
        statuses[503] = (
            "The database is unavailable, or a queue behind this route is past its limit "
            "(load shedding): nothing was changed; retry after `Retry-After` seconds"
        )
    if role is Role.ADMIN:
        statuses[403] = "A storefront key on an admin route"
    if route.dependant.path_params:
        statuses[404] = "Not found"
    if route.body_field is not None:
        statuses[413] = "The body is larger than the limit (`MAX_BODY_BYTES`, 64 KiB)"
        statuses[415] = "The body is not `application/json`"
    if route.body_field is not None or _takes_input(route.dependant):
        statuses[422] = _INVALID
    return statuses


def _takes_input(dependant: Dependant) -> bool:
    return bool(
        dependant.path_params
        or dependant.query_params
        or dependant.header_params
        or any(_takes_input(sub) for sub in dependant.dependencies)
    )


def _problem_response(entry: dict[str, Any], status: int) -> None:
    entry["content"] = {PROBLEM_JSON: {"schema": _REF}}
    if status == 503:
        entry["headers"] = {**entry.get("headers", {}), **_RETRY_AFTER}
    if status == 401:
        entry["headers"] = {**entry.get("headers", {}), **_WWW_AUTHENTICATE}


# A parameter the route checks itself (to answer its own problem, e.g. 400 for a missing
# Idempotency-Key) is optional to FastAPI; `json_schema_extra=DOCUMENT_AS_REQUIRED` makes the
# document say what the contract says: required.
DOCUMENT_AS_REQUIRED = {"x-document-as-required": True}


def _required_as_documented(operation: dict[str, Any]) -> None:
    for parameter in operation.get("parameters", []):
        schema = parameter.get("schema", {})
        if schema.pop("x-document-as-required", False):
            parameter["required"] = True
            variants = [item for item in schema.pop("anyOf", []) if item.get("type") != "null"]
            if len(variants) == 1:
                schema.update(variants[0])


def document_problems(schema: dict[str, Any], app: FastAPI) -> None:
    routes = {
        (route.path, method.lower()): route for route in api_routes(app) for method in route.methods
    }
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            route = routes.get((path, method))
            _required_as_documented(operation)
            responses = operation.setdefault("responses", {})
            if route is not None:
                for status, description in problem_statuses(route).items():
                    responses.setdefault(str(status), {"description": description})
            for code, entry in responses.items():
                if code[:1] in ("4", "5"):
                    if entry.get("description") == "Validation Error":  # FastAPI's default
                        entry["description"] = _INVALID
                    _problem_response(entry, int(code))
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    problem = ProblemDetails.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(problem.pop("$defs", {}))
    components["ProblemDetails"] = problem
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
            )
            document_problems(schema, app)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
