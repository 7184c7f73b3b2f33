"""The probes and the metrics endpoint every service serves: `/healthz` (the process is
alive), `/readyz` (its database and the broker answer; 503 problem+json otherwise),
`/readyz/traffic` (it can take requests: its database answers) and `/metrics` (Prometheus
text).

Why two readiness probes: `/readyz` is the contract's, and says whether everything the
service talks to answers, for people, `make up` and monitoring. A load balancer must not route
on it: with the broker away every API would be taken out of its Service together, although
checkout still answers 202 into the outbox, which drains when the broker is back (fault b).
Kubernetes' readinessProbe therefore asks `/readyz/traffic`, which fails only when requests
would fail (the database, which every write and the outbox need)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shared.web.problems import PROBLEM_JSON, Problem

_NOT_READY = {
    "description": "The database or the broker does not answer (`checks` says which)",
    "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}},
}
# What a request needs to be answered: the broker is not among them (the outbox holds tasks).
TRAFFIC_NEEDS = frozenset({"database"})
_METRICS = {"description": "Prometheus text format", "content": {"text/plain": {}}}


def install_probes(
    app: FastAPI,
    readiness: Callable[[], Awaitable[dict[str, bool]]],
    why: Callable[[str], str] = lambda name: f"{name} not answering",
) -> None:
    """`readiness` gives each check's verdict; `why(name)` says what a failed one means
    (default `<name> not answering`; the broker may instead be `blocked`, on an alarm)."""

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
        return verdict(await readiness(), needed=None, what="Not ready")

    @app.get(
        "/readyz/traffic",
        tags=["probes"],
        summary="The service can take requests: its database answers (for load balancers)",
        responses={503: _NOT_READY},
    )
    async def readyz_traffic() -> dict[str, Any]:
        return verdict(await readiness(), needed=TRAFFIC_NEEDS, what="Not ready for traffic")

    def verdict(checks: dict[str, bool], needed: frozenset[str] | None, what: str) -> dict:
        """200 with every check when those `needed` (None: all) pass; else a 503 problem
        naming the failed ones."""
        down = [
            name for name, ok in checks.items() if not ok and (needed is None or name in needed)
        ]
        if down:
            detail = f"{what}: {', '.join(why(name) for name in down)}."
            raise Problem(503, "not-ready", detail, {"Retry-After": "1"}, checks=checks)
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
