"""The HTTP kit's own promises (shared/web/): one middleware gives each request its correlation
id, its metrics and its log line; the key is compared once per request; routes get the unit of
work and the settings from `shared.web.deps`."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import pytest
from fastapi import APIRouter
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from shared.infra.settings import Settings
from shared.web.app import create_service_app
from shared.web.auth import Auth
from shared.web.deps import AdminKey, AppSettings, StorefrontKey, UoW
from shared.web.middleware import RequestTelemetry

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

STOREFRONT = {"Authorization": "Bearer dev-storefront"}
ADMIN = {"Authorization": "Bearer dev-admin"}
router = APIRouter(prefix="/v1/kit")
UNIT_OF_WORK = object()


@router.get("/{item}")
async def read(item: str, uow: UoW, settings: AppSettings, key: StorefrontKey) -> dict:
    return {"uow": uow is UNIT_OF_WORK, "batch": settings.campaign_batch_size, "key": key}


@router.post("/{item}")
async def write(item: str, key: AdminKey) -> dict:
    return {"key": key}


@pytest.fixture
def client() -> TestClient:
    app = create_service_app("kit", "Kit.", lambda _: None, [router], Settings())
    app.state.runtime = SimpleNamespace(uow=lambda: UNIT_OF_WORK)
    return TestClient(app)


def requests_counted(route: str, status: str) -> float:
    labels = {"service": "kit", "method": "GET", "route": route, "status": status}
    return REGISTRY.get_sample_value("doorbuster_http_requests_total", labels) or 0.0


def test_routes_get_the_unit_of_work_settings_and_key_from_deps(client):
    response = client.get("/v1/kit/a", headers=STOREFRONT)
    assert response.json() == {"uow": True, "batch": 500, "key": "dev-storefront"}
    assert client.post("/v1/kit/a", headers=ADMIN).json() == {"key": "dev-admin"}


@pytest.mark.parametrize(("method", "headers"), [("GET", STOREFRONT), ("POST", ADMIN)])
def test_the_key_is_compared_once_per_request(client, monkeypatch, method, headers):
    compared = []
    role_of = Auth.role_of
    monkeypatch.setattr(
        Auth, "role_of", lambda self, key: compared.append(key) or role_of(self, key)
    )
    assert client.request(method, "/v1/kit/a", headers=headers).status_code == 200
    assert compared == [headers["Authorization"].removeprefix("Bearer ")]


def test_one_middleware_logs_counts_and_tags_every_answer(client):
    app = client.app
    assert [m.cls for m in app.user_middleware].count(RequestTelemetry) == 1
    assert app.user_middleware[0].cls is RequestTelemetry  # outermost: sees the guard's 401s
    before = requests_counted("/v1/kit/{item}", "401")
    with capture_logs() as logs:
        refused = client.get("/v1/kit/a", headers={"X-Correlation-ID": "c-9"})
        client.get("/healthz")
    assert refused.status_code == 401 and refused.headers["x-correlation-id"] == "c-9"
    assert requests_counted("/v1/kit/{item}", "401") == before + 1
    lines = [line for line in logs if line["event"] == "http request"]
    assert len(lines) == 1  # probes are counted, not logged
    assert {k: lines[0][k] for k in ("route", "status", "correlation_id")} == {
        "route": "/v1/kit/{item}",
        "status": 401,
        "correlation_id": "c-9",
    }
    assert requests_counted("/healthz", "200") >= 1
