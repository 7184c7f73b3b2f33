"""The two readiness probes: `/readyz` (the contract's: the database and the broker answer)
and `/readyz/traffic` (what a load balancer routes on: the database answers; with the broker
away checkout still answers into the outbox)."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from shared.web.probes import install_probes
from shared.web.problems import install_problem_handlers


def probed(checks: dict[str, bool]) -> TestClient:
    app = FastAPI()
    install_problem_handlers(app)

    async def readiness() -> dict[str, bool]:
        return checks

    install_probes(app, readiness)
    return TestClient(app)


@pytest.mark.parametrize(
    ("database", "broker", "ready", "traffic"),
    [(True, True, 200, 200), (True, False, 503, 200), (False, True, 503, 503)],
)
def test_the_broker_away_keeps_an_api_in_its_service(database, broker, ready, traffic):
    client = probed({"database": database, "broker": broker})
    assert client.get("/readyz").status_code == ready
    answer = client.get("/readyz/traffic")
    assert answer.status_code == traffic
    assert answer.json()["checks"] == {"database": database, "broker": broker}
    if traffic == 503:
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.headers["retry-after"] == "1"
        assert answer.json()["detail"] == "Not ready for traffic: database not answering."
