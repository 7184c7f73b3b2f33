"""The common HTTP rules on the running services, over real HTTP: auth on every route (taken
from each service's own OpenAPI document, so new routes are covered without a new test),
problem+json everywhere, limits, cursors, metrics; and bad input changes nothing."""

from __future__ import annotations

import re
import socket
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from devtools.harness.shop import ADMIN, STOREFRONT, Shop, unique_sku
from devtools.harness.stack import PORTS, Stack, db_fetch

SERVICES = ("orders", "inventory", "notifications")
METHODS = ("get", "put", "post", "patch", "delete")


def operations(stack: Stack) -> list[tuple[str, str, str, set[str]]]:
    """(service, method, path, security schemes) of every operation that needs a key."""
    found = []
    for service in SERVICES:
        document = httpx.get(f"{stack.url(service)}/openapi.json").json()
        for path, item in document["paths"].items():
            for method, operation in item.items():
                if method in METHODS and operation.get("security"):
                    schemes = {name for entry in operation["security"] for name in entry}
                    found.append((service, method, path, schemes))
    return found


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "SOME-ID-1", path)


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, (response.request.url, response.text)
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert {"type", "title", "status", "detail"} <= problem.keys()
    assert problem["status"] == status
    return problem


def test_every_route_refuses_missing_and_unknown_keys_and_storefront_keys_on_admin_routes(
    stack: Stack,
):
    found = operations(stack)
    assert len(found) >= 6, found  # at least the walking skeleton's routes
    admin_routes = 0
    for service, method, path, schemes in found:
        url = f"{stack.url(service)}{concrete(path)}"
        body = {"json": {}} if method in ("put", "post", "patch") else {}
        for headers in ({}, {"Authorization": "Bearer wrong-key"}, {"Authorization": "dev-admin"}):
            response = httpx.request(method, url, headers=headers, **body)
            assert_problem(response, 401)
            assert response.headers["www-authenticate"] == "Bearer"
        if schemes == {"AdminKey"}:
            admin_routes += 1
            assert_problem(httpx.request(method, url, headers=STOREFRONT, **body), 403)
        else:
            assert schemes == {"StorefrontKey"}, (path, schemes)
    assert admin_routes >= 2


def test_unknown_routes_methods_and_media_types_are_problems(stack: Stack):
    assert_problem(httpx.get(f"{stack.url('orders')}/v2/nothing"), 404)
    response = httpx.delete(f"{stack.url('orders')}/v1/orders", headers=STOREFRONT)
    assert_problem(response, 405)
    assert response.headers["allow"] == "GET, POST"
    response = httpx.post(
        f"{stack.url('inventory')}/v1/products/X/restock",
        content=b"quantity=1",
        headers={**ADMIN, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_problem(response, 415)


def raw_request(port: int, head: str, body_chunks: list[bytes]) -> bytes:
    """HTTP/1.1 over a plain socket, as a client that streams its body sends it; returns the
    answer's status line, headers and body."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(head.encode())
        for chunk in body_chunks:
            connection.sendall(chunk)
        received = b""
        while b"\r\n\r\n" not in received:
            received += connection.recv(65536)
        headers, _, body = received.partition(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length: *(\d+)", headers).group(1))
        while len(body) < length:
            body += connection.recv(65536)
        return headers + b"\r\n\r\n" + body


def test_a_body_past_64_kib_is_413_before_it_is_read_even_chunked(stack: Stack):
    sku = unique_sku("BIG")
    head = (
        f"PUT /v1/products/{sku} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer dev-admin\r\n"
        "Content-Type: application/json\r\n"
    )
    declared = raw_request(PORTS.inventory, head + "Content-Length: 10000000\r\n\r\n", [b"{"])
    assert declared.startswith(b"HTTP/1.1 413 ")
    assert b"application/problem+json" in declared and b"content-too-large" in declared

    chunk = b"%x\r\n%s\r\n" % (16384, b" " * 16384)
    chunked = raw_request(
        PORTS.inventory,
        head + "Transfer-Encoding: chunked\r\n\r\n",
        [b'4\r\n{"a"\r\n'] + [chunk] * 8,
    )
    assert chunked.startswith(b"HTTP/1.1 413 ")
    assert b"content-too-large" in chunked
    product = httpx.get(f"{stack.url('inventory')}/v1/products/{sku}", headers=STOREFRONT)
    assert product.status_code == 404  # nothing was created


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "price": 10**30, "currency": "usd", "stock": 1},
        {"name": "x", "price": 100, "currency": "usd", "stock": 1, "admin": True},
        {"name": "x", "price": "100", "currency": "usd", "stock": 1},
        {"name": "x", "price": 1.5, "currency": "usd", "stock": 1},
        {"name": "x\u0000y", "price": 100, "currency": "usd", "stock": 1},
        {"name": "x" * 201, "price": 100, "currency": "usd", "stock": 1},
        {"name": "x", "price": 100, "currency": "eur", "stock": 1},
    ],
    ids=["huge-int", "extra-field", "string-int", "float", "nul", "long-name", "currency"],
)
def test_invalid_products_are_422_with_fields_and_change_nothing(stack: Stack, body):
    sku = unique_sku("BAD")
    response = httpx.put(f"{stack.url('inventory')}/v1/products/{sku}", json=body, headers=ADMIN)
    problem = assert_problem(response, 422)
    assert problem["errors"] and all({"field", "message"} <= e.keys() for e in problem["errors"])
    assert (
        httpx.get(f"{stack.url('inventory')}/v1/products/{sku}", headers=ADMIN).status_code == 404
    )


def test_nan_and_infinity_are_refused(stack: Stack):
    content = b'{"name": "x", "price": NaN, "currency": "usd", "stock": Infinity}'
    response = httpx.put(
        f"{stack.url('inventory')}/v1/products/{unique_sku('NAN')}",
        content=content,
        headers={**ADMIN, "Content-Type": "application/json"},
    )
    fields = {error["field"] for error in assert_problem(response, 422)["errors"]}
    assert {"body.price", "body.stock"} <= fields


async def test_an_invalid_order_is_refused_and_leaves_no_trace(shop: Shop):
    key = f"bad-{unique_sku()}"
    body = {
        "customer": {"id": "cus_1", "email": "not-an-email"},
        "items": [{"sku": "A", "quantity": 1}, {"sku": "A", "quantity": 101}],
        "payment_method": "pm_card_visa",
    }
    response = await shop.orders.post(
        "/v1/orders", json=body, headers={**STOREFRONT, "Idempotency-Key": key}
    )
    fields = {error["field"] for error in assert_problem(response, 422)["errors"]}
    assert {"body.customer.email", "body.items.1.quantity"} <= fields
    assert await db_fetch("orders", "SELECT 1 FROM idempotency_keys WHERE key = $1", key) == []


@pytest.mark.parametrize(
    ("service", "path"),
    [
        ("orders", "/v1/orders"),
        ("inventory", "/v1/products"),
        ("notifications", "/v1/notifications"),
    ],
)
@pytest.mark.parametrize(
    "cursor",
    # not base64; "not json"; [1,2,3,4]; {}; ["x","y"] (no time); [{"a":1},null]; [1]
    [
        "not-base64!",
        "bm90IGpzb24",
        "WzEsMiwzLDRd",
        "e30",
        "WyJ4IiwieSJd",
        "W3siYSI6MX0sbnVsbF0",
        "WzFd",
    ],
)
def test_a_cursor_we_did_not_issue_is_400(stack: Stack, service: str, path: str, cursor: str):
    response = httpx.get(f"{stack.url(service)}{path}", params={"cursor": cursor}, headers=ADMIN)
    assert assert_problem(response, 400)["type"].endswith("/invalid-cursor")


async def test_lists_page_through_every_item_once_in_a_stable_order(shop: Shop):
    prefix = unique_sku("PAGE")
    skus = sorted(f"{prefix}-{index}" for index in range(5))
    for sku in skus:
        await shop.put_product(sku, stock=1)
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await shop.inventory.get("/v1/products", params=params, headers=ADMIN)).json()
        seen += [item["sku"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [sku for sku in seen if sku.startswith(prefix)] == skus
    assert seen == sorted(seen) and len(seen) == len(set(seen))


def test_metrics_count_requests_and_latency_per_route(stack: Stack):
    url = stack.url("inventory")
    httpx.get(f"{url}/v1/products/NOPE-1", headers=STOREFRONT)
    httpx.get(f"{url}/v1/products/NOPE-2", headers={})
    httpx.get(f"{url}/scanner/probe")
    text = httpx.get(f"{url}/metrics").text
    families = {family.name: family for family in text_string_to_metric_families(text)}
    counts = {
        (s.labels["method"], s.labels["route"], s.labels["status"]): s.value
        for s in families["doorbuster_http_requests"].samples
        if s.name.endswith("_total") and s.labels["service"] == "inventory"
    }
    assert counts[("GET", "/v1/products/{sku}", "404")] >= 1
    assert counts[("GET", "/v1/products/{sku}", "401")] >= 1
    assert counts[("GET", "unmatched", "404")] >= 1
    latency = families["doorbuster_http_request_seconds"]
    assert any(
        s.name.endswith("_count") and s.labels["route"] == "/v1/products/{sku}" and s.value >= 2
        for s in latency.samples
    )
    orders = httpx.get(f"{stack.url('orders')}/metrics").text
    assert 'doorbuster_queue_depth{queue="orders"}' in orders  # checkout watches its queue


def test_the_docs_page_and_the_openapi_documents_answer(stack: Stack):
    for service in SERVICES:
        assert httpx.get(f"{stack.url(service)}/docs").status_code == 200
        document = httpx.get(f"{stack.url(service)}/openapi.json").json()
        assert "ProblemDetails" in document["components"]["schemas"]


async def test_storefront_lists_are_scoped_to_a_customer_or_an_order(shop: Shop):
    sku = unique_sku("SCOPE")
    await shop.put_product(sku, stock=5)
    order_id = (await shop.place_order([(sku, 1)])).json()["id"]
    for client, path, name in (
        (shop.orders, "/v1/orders", "customer_id"),
        (shop.notifications, "/v1/notifications", "order_id"),
    ):
        refused = assert_problem(await client.get(path, headers=STOREFRONT), 400)
        assert refused["type"].endswith(f"/{name.replace('_', '-')}-required")
        assert (await client.get(path, headers=ADMIN)).status_code == 200
    mine = await shop.orders.get(
        "/v1/orders", params={"customer_id": "cus_test"}, headers=STOREFRONT
    )
    assert order_id in {order["id"] for order in mine.json()["items"]}
    assert {order["customer"]["id"] for order in mine.json()["items"]} == {"cus_test"}
    mails = await shop.notifications.get(
        "/v1/notifications", params={"order_id": order_id}, headers=STOREFRONT
    )
    assert mails.status_code == 200
