"""A storefront key acts for one signed-in customer: its list reads name the customer (orders)
or the order (notifications); the unfiltered lists are admin only."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import pytest
from fastapi import APIRouter, Query, Request

from services.notifications.api import router as notifications_router
from services.orders.api import router as orders_router
from shared.infra.settings import Settings
from shared.web.app import create_service_app
from shared.web.auth import scope_to_filter
from shared.web.deps import StorefrontKey

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

STOREFRONT = {"Authorization": "Bearer dev-storefront"}
ADMIN = {"Authorization": "Bearer dev-admin"}

probe = APIRouter()


@probe.get("/v1/probe")
async def scoped(request: Request, api_key: StorefrontKey, of: str | None = Query(None)) -> dict:
    scope_to_filter(request, api_key, "of", of)
    return {"of": of}


def client(*routers: APIRouter) -> TestClient:
    # No lifespan, and a runtime whose unit of work fails if used: the refusal comes before
    # anything touches the database.
    app = create_service_app("test", "t", lambda _: None, routers, Settings())
    app.state.runtime = SimpleNamespace(uow=lambda: NO_DATABASE)
    return TestClient(app)


class _NoDatabase:
    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"the route touched the database ({name}) before refusing")


NO_DATABASE = _NoDatabase()


@pytest.mark.parametrize(
    ("routers", "path", "name"),
    [
        ((orders_router,), "/v1/orders", "customer_id"),
        ((notifications_router,), "/v1/notifications", "order_id"),
    ],
)
def test_a_storefront_key_must_filter_the_list(routers, path, name):
    response = client(*routers).get(path, headers=STOREFRONT)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"].endswith(f"/{name.replace('_', '-')}-required")
    assert problem["errors"] == [
        {"field": f"query.{name}", "message": "required with a storefront key"}
    ]


def test_an_admin_key_may_list_everything_and_a_filter_satisfies_a_storefront_key():
    http = client(probe)
    assert http.get("/v1/probe", headers=ADMIN).json() == {"of": None}
    assert http.get("/v1/probe", params={"of": "x"}, headers=STOREFRONT).json() == {"of": "x"}
    assert http.get("/v1/probe", headers=STOREFRONT).status_code == 400
