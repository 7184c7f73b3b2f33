"""The shared HTTP layer on an in-process app: auth, problem+json, limits, 415, shedding.

No lifespan runs (no database, no broker): every answer here comes before a handler would
touch either, which is the point of the guard, the body limit and the shedding dependency.
"""

from __future__ import annotations

import warnings

import pytest
from fastapi import APIRouter, Depends, FastAPI

from shared.infra.settings import Settings
from shared.messaging.topology import QueueName
from shared.models import StrictModel
from shared.web.app import create_service_app
from shared.web.deps import AdminKey, StorefrontKey
from shared.web.shedding import QueueDepths, shed_if_backlogged
from tests.support.production import production_settings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

STOREFRONT = {"Authorization": "Bearer dev-storefront"}
ADMIN = {"Authorization": "Bearer dev-admin"}


class Thing(StrictModel):
    name: str


router = APIRouter(prefix="/v1/things")


@router.post("", status_code=202, dependencies=[Depends(shed_if_backlogged(QueueName.BULK))])
async def make_thing(body: Thing, _: AdminKey) -> dict[str, str]:
    return {"name": body.name}


@router.get("/{thing_id}")
async def get_thing(thing_id: str, _: StorefrontKey) -> dict[str, str]:
    return {"id": thing_id}


class FixedDepths(QueueDepths):
    def __init__(self, depths: dict[QueueName, int | None]):
        self._fixed = depths
        self.queues = tuple(depths)

    def depth(self, queue: QueueName) -> int | None:
        return self._fixed.get(queue)


def make_app(settings: Settings | None = None, bulk_depth: int | None = 0) -> FastAPI:
    settings = settings or Settings(max_body_bytes=4096, shed_limit_bulk=10)
    app = create_service_app("test", "A test service.", lambda _: None, [router], settings)
    app.state.queue_depths = FixedDepths({QueueName.BULK: bulk_depth})
    return app


@pytest.fixture
def client() -> TestClient:
    return TestClient(make_app())


def assert_problem(response, status: int, slug: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert {"type", "title", "status", "detail"} <= problem.keys()
    assert problem["type"] == f"https://doorbuster.dev/problems/{slug}"
    assert problem["status"] == status
    return problem


def test_no_key_or_an_unknown_key_is_401_with_a_challenge(client):
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic ZGV2LWFkbWlu"}):
        response = client.get("/v1/things/1", headers=headers)
        assert_problem(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"


def test_a_storefront_key_on_an_admin_route_is_403(client):
    assert_problem(
        client.post("/v1/things", json={"name": "x"}, headers=STOREFRONT), 403, "forbidden"
    )
    assert client.post("/v1/things", json={"name": "x"}, headers=ADMIN).status_code == 202


def test_the_key_is_checked_before_the_body_is_read(client):
    huge = b"{" * 10_000
    assert_problem(client.post("/v1/things", content=huge), 401, "unauthorized")
    broken = client.post("/v1/things", content=b"{", headers={"Content-Type": "application/json"})
    assert_problem(broken, 401, "unauthorized")


def test_production_keys_replace_the_dev_keys():
    settings = production_settings(storefront_api_keys="sf-1,sf-2", admin_api_keys="ad-1")
    client = TestClient(make_app(settings))
    assert_problem(client.get("/v1/things/1", headers=STOREFRONT), 401, "unauthorized")
    assert client.get("/v1/things/1", headers={"Authorization": "Bearer sf-2"}).status_code == 200
    forbidden = client.post(
        "/v1/things", json={"name": "x"}, headers={"Authorization": "Bearer sf-1"}
    )
    assert_problem(forbidden, 403, "forbidden")
    created = client.post(
        "/v1/things", json={"name": "x"}, headers={"Authorization": "Bearer ad-1"}
    )
    assert created.status_code == 202


def test_unknown_routes_and_methods_are_problems(client):
    assert_problem(client.get("/nowhere"), 404, "not-found")
    response = client.delete("/v1/things", headers=ADMIN)
    assert_problem(response, 405, "method-not-allowed")
    assert response.headers["allow"] == "POST"


def test_405_allows_every_method_of_the_path_not_only_the_first_routes():
    other = APIRouter()

    @other.get("/v1/things")
    async def list_things(_: StorefrontKey) -> list[str]:
        return []

    app = create_service_app("test", "x", lambda _: None, [router, other], Settings())
    response = TestClient(app).request("OPTIONS", "/v1/things")
    assert_problem(response, 405, "method-not-allowed")
    assert response.headers["allow"] == "GET, POST"


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
def test_a_json_route_refuses_other_content_types_with_415(client, content_type):
    headers = {**ADMIN, **({"Content-Type": content_type} if content_type else {})}
    response = client.post("/v1/things", content=b'{"name": "x"}', headers=headers)
    assert_problem(response, 415, "unsupported-media-type")


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "application/x+json"])
def test_json_media_types_are_accepted(client, content_type):
    headers = {**ADMIN, "Content-Type": content_type}
    assert client.post("/v1/things", content=b'{"name": "x"}', headers=headers).status_code == 202


def test_a_body_past_the_limit_is_413_by_content_length(client):
    body = b'{"name": "' + b"x" * 5000 + b'"}'
    response = client.post(
        "/v1/things", content=body, headers={**ADMIN, "Content-Type": "application/json"}
    )
    problem = assert_problem(response, 413, "content-too-large")
    assert "4096" in problem["detail"]


def test_a_chunked_body_past_the_limit_is_413_too(client):
    def chunks():
        yield b'{"name": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}'

    response = client.post(
        "/v1/things", content=chunks(), headers={**ADMIN, "Content-Type": "application/json"}
    )
    assert_problem(response, 413, "content-too-large")


def test_a_chunked_body_within_the_limit_is_read_whole(client):
    def chunks():
        yield b'{"name": '
        yield b'"chunked"}'

    response = client.post(
        "/v1/things", content=chunks(), headers={**ADMIN, "Content-Type": "application/json"}
    )
    assert response.status_code == 202 and response.json() == {"name": "chunked"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"name": "x", "extra": 1}', "body.extra"),
        (b'{"name": 5}', "body.name"),
        (b'{"name": "a\\u0000b"}', "body"),
        (b'{"name": "a\\ud800b"}', "body"),
        (b"{", "body.1"),
        (b"[]", "body"),
    ],
)
def test_invalid_bodies_are_422_listing_the_fields(client, body, field):
    headers = {**ADMIN, "Content-Type": "application/json"}
    problem = assert_problem(
        client.post("/v1/things", content=body, headers=headers), 422, "validation-error"
    )
    assert field in [error["field"] for error in problem["errors"]]


def test_control_characters_in_the_path_or_query_are_422(client):
    problem = assert_problem(
        client.get("/v1/things/a%00b", headers=STOREFRONT), 422, "validation-error"
    )
    assert problem["errors"] == [
        {"field": "path", "message": "must not contain control characters"}
    ]
    problem = assert_problem(
        client.get("/v1/things/1?x=%0a", headers=STOREFRONT), 422, "validation-error"
    )
    assert problem["errors"][0]["field"] == "query.x"


def test_a_backlogged_queue_sheds_its_route_with_retry_after():
    client = TestClient(make_app(bulk_depth=11))
    response = client.post("/v1/things", json={"name": "x"}, headers=ADMIN)
    assert_problem(response, 503, "overloaded")
    assert response.headers["retry-after"] == "5"


@pytest.mark.parametrize("depth", [10, None])
def test_a_queue_at_its_limit_or_of_unknown_depth_sheds_nothing(depth):
    client = TestClient(make_app(bulk_depth=depth))
    assert client.post("/v1/things", json={"name": "x"}, headers=ADMIN).status_code == 202


def test_the_openapi_document_describes_errors_and_auth(client):
    document = client.get("/openapi.json").json()
    schemes = document["components"]["securitySchemes"]
    assert {"StorefrontKey", "AdminKey"} <= schemes.keys()
    assert all(
        scheme == {**scheme, "type": "http", "scheme": "bearer"} for scheme in schemes.values()
    )
    post = document["paths"]["/v1/things"]["post"]
    assert post["security"] == [{"AdminKey": []}]
    assert {"401", "403", "413", "415", "422", "500", "503"} <= post["responses"].keys()
    get = document["paths"]["/v1/things/{thing_id}"]["get"]
    assert get["security"] == [{"StorefrontKey": []}]
    assert {"401", "404", "422", "500", "503"} <= get["responses"].keys()
    assert "403" not in get["responses"]
    for path in document["paths"].values():
        for operation in path.values():
            for status, response in operation["responses"].items():
                if status[0] in "45":
                    assert response["content"] == {
                        "application/problem+json": {
                            "schema": {"$ref": "#/components/schemas/ProblemDetails"}
                        }
                    }, (status, operation["operationId"])
    assert post["responses"]["503"]["headers"]["Retry-After"]["required"] is True
    assert "ProblemDetails" in document["components"]["schemas"]
    assert "HTTPValidationError" not in document["components"]["schemas"]
    assert client.get("/docs").status_code == 200


def test_the_docs_pages_are_served_from_the_app_not_a_cdn(client):
    """The browser test (tests/e2e/test_docs_offline.py) shows they render; this, that every
    file they load is ours and that the pages are in no OpenAPI document."""
    for page, asset in (("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")):
        html = client.get(page)
        assert html.status_code == 200
        assert f'"/docs-static/{asset}"' in html.text and "https://" not in html.text
        served = client.get(f"/docs-static/{asset}")
        assert served.status_code == 200 and len(served.content) > 500_000
    assert client.get("/docs-static/swagger-ui.css").status_code == 200
    assert not {"/docs", "/redoc"} & set(client.get("/openapi.json").json()["paths"])


def test_every_answer_carries_a_correlation_id(client):
    assert client.get("/nowhere").headers["x-correlation-id"]
    echoed = client.get("/healthz", headers={"X-Correlation-ID": "abc-1"})
    assert echoed.headers["x-correlation-id"] == "abc-1"
    replaced = client.get("/healthz", headers={"X-Correlation-ID": "x" * 100})
    assert replaced.headers["x-correlation-id"] != "x" * 100


@pytest.mark.parametrize(
    "body",
    [b'{"name": "\xff\xfe"}', b"[" * 3000 + b"]" * 3000, b'{"name": ' + b"9" * 5000 + b"}"],
    ids=["not-utf8", "too-deep", "too-many-digits"],
)
def test_bodies_python_cannot_parse_are_422_not_400_or_500(body):
    client = TestClient(make_app(Settings(max_body_bytes=64 * 1024)))
    headers = {**ADMIN, "Content-Type": "application/json"}
    problem = assert_problem(
        client.post("/v1/things", content=body, headers=headers), 422, "validation-error"
    )
    assert problem["errors"][0]["field"].startswith("body")
