"""What operators see of one order on the running stack: one grep of its correlation id finds
it in the orders API and in every pool it went through, and the services and pools export the
metrics the dashboards and KEDA read."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from pathlib import Path

import httpx

from devtools.harness.metrics import sample, scrape
from devtools.harness.shop import STOREFRONT, Shop, unique_sku
from devtools.harness.stack import Stack

# Which process logs which task of a paid order under its correlation id. Its commit goes out
# gathered with other orders' (`inventory.commit_many`, under a correlation id of its own):
# its line names the order among its `order_ids`.
EXPECTED_TASKS = {
    "orders-pool": {"inventory.reserve"},
    "payments-pool": {"inventory.reserved"},
    "notifications-pool": {"notifications.send_order_mail"},
}


def grep(logs: Path, needle: str) -> dict[str, list[dict]]:
    """`grep -r needle var/test-logs*/`, parsed: JSON lines per log file (process)."""
    found: dict[str, list[dict]] = {}
    for path in sorted(logs.glob("*.log")):
        for line in path.read_text(errors="replace").splitlines():
            if needle in line and line.startswith("{"):
                found.setdefault(path.stem, []).append(json.loads(line))
    return found


async def wait_for_lines(logs: Path, needle: str, timeout: float = 60) -> dict[str, list[dict]]:
    deadline = time.monotonic() + timeout
    while True:
        found = grep(logs, needle)
        done = {
            process: {
                line.get("task")
                for line in found.get(process, [])
                if line["event"] == "task succeeded"
            }
            for process in EXPECTED_TASKS
        }
        if all(EXPECTED_TASKS[process] <= done[process] for process in EXPECTED_TASKS):
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"task lines missing for {needle}: {done}")
        await asyncio.sleep(0.2)


async def wait_for_gathered_commit(logs: Path, order_id: str, timeout: float = 30) -> dict:
    """The orders pool's line of the `inventory.commit_many` that named `order_id`."""
    deadline = time.monotonic() + timeout
    while True:
        for line in grep(logs, order_id).get("orders-pool", []):
            if line.get("task") == "inventory.commit_many" and line["event"] == "task succeeded":
                assert order_id in line["order_ids"]
                return line
        if time.monotonic() > deadline:
            raise AssertionError(f"no inventory.commit_many line names {order_id}")
        await asyncio.sleep(0.2)


async def wait_for_webhook_line(logs: Path, needle: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        found = grep(logs, needle)
        if any(line["event"].startswith("webhook ") for line in found.get("orders-api", [])):
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"no webhook line under {needle} in the orders API's log")
        await asyncio.sleep(0.2)


async def test_one_grep_of_the_correlation_id_follows_an_order_end_to_end(stack: Stack, shop: Shop):
    sku = unique_sku("GREP")
    await shop.put_product(sku, stock=2)
    correlation_id = f"corr-{uuid.uuid4().hex}"
    response = await shop.orders.post(
        "/v1/orders",
        json={
            "customer": {"id": "cus_grep", "email": "grep@example.com"},
            "items": [{"sku": sku, "quantity": 1}],
            "payment_method": "pm_card_visa",
        },
        headers={
            **STOREFRONT,
            "Idempotency-Key": uuid.uuid4().hex,
            "X-Correlation-ID": correlation_id,
        },
    )
    assert response.status_code == 202, response.text
    assert response.headers["x-correlation-id"] == correlation_id
    order_id = response.json()["id"]
    assert (await shop.wait_final(order_id))["status"] == "paid"
    await shop.wait_mail(order_id, "order_confirmation")

    found = await wait_for_lines(stack.logs, correlation_id)
    await wait_for_gathered_commit(stack.logs, order_id)
    # The emulator's signed webhook for the charge is logged under the order's id too.
    found = await wait_for_webhook_line(stack.logs, correlation_id)
    grepped = subprocess.run(
        ["grep", "-rl", correlation_id, str(stack.logs)], capture_output=True, text=True, check=True
    ).stdout.split()
    assert {Path(path).stem for path in grepped} == {"orders-api", *EXPECTED_TASKS}

    [request] = [
        line
        for line in found["orders-api"]
        if line["event"] == "http request" and line["route"] == "/v1/orders"
    ]
    assert (request["method"], request["route"], request["status"]) == ("POST", "/v1/orders", 202)
    assert request["process"] == "orders"
    [webhook] = [line for line in found["orders-api"] if line["event"].startswith("webhook ")]
    assert "payment_intent.succeeded" in webhook["event"] and order_id in webhook["event"]
    assert (webhook["level"], webhook["order_id"]) == ("info", order_id)
    # Whichever of the charge task and the webhook comes second is expected: not at info.
    assert not [line for lines in found.values() for line in lines if "already" in line["event"]]
    for process in EXPECTED_TASKS:
        lines = found[process]
        assert {line["process"] for line in lines} == {process}
        assert all(line["correlation_id"] == correlation_id for line in lines)
        task_lines = [line for line in lines if line["event"].startswith("task ")]
        assert {line["order_id"] for line in task_lines} == {order_id}
        succeeded = [line for line in task_lines if line["event"] == "task succeeded"]
        assert all(line["duration_ms"] >= 0 for line in succeeded)
    assert "grep@example.com" not in json.dumps(found)  # addresses never reach the logs


async def test_services_export_request_and_outbox_metrics(stack: Stack, shop: Shop):
    sku = unique_sku("METRICS")
    await shop.put_product(sku, stock=1)
    order_id = (await shop.place_order([(sku, 1)])).json()["id"]
    await shop.wait_final(order_id)

    for service in ("orders", "inventory", "notifications"):
        samples = scrape(f"{stack.url(service)}/metrics")
        assert sample(samples, "doorbuster_outbox_unpublished", service=service) is not None
        age = sample(samples, "doorbuster_outbox_oldest_unpublished_age_seconds", service=service)
        assert age is not None and age >= 0
    orders = scrape(f"{stack.url('orders')}/metrics")
    placed = {"service": "orders", "method": "POST", "route": "/v1/orders"}
    assert sample(orders, "doorbuster_http_requests_total", status="202", **placed) >= 1
    assert sample(orders, "doorbuster_http_request_seconds_count", **placed) >= 1
    assert sample(orders, "doorbuster_http_request_seconds_bucket", le="+Inf", **placed) >= 1


async def test_every_pool_exports_task_metrics_and_probes(stack: Stack, shop: Shop):
    sku = unique_sku("POOLMETRICS")
    await shop.put_product(sku, stock=1)
    order_id = (await shop.place_order([(sku, 1)])).json()["id"]
    assert (await shop.wait_final(order_id))["status"] == "paid"
    await shop.wait_mail(order_id, "order_confirmation")

    for pool, queue, task in (
        ("payments", "payments", "inventory.reserved"),  # priced and charged
        ("orders", "orders", "inventory.reserve"),
        ("notifications", "notifications.transactional", "notifications.send_order_mail"),
    ):
        url = stack.processes[f"{pool}-pool"].metrics_url
        samples = scrape(url)
        labels = {"queue": queue, "task": task}
        assert sample(samples, "doorbuster_task_wait_seconds_count", **labels) >= 1, pool
        assert sample(samples, "doorbuster_task_run_seconds_count", **labels) >= 1, pool
        assert sample(samples, "doorbuster_tasks_total", outcome="succeeded", **labels) >= 1
        assert sample(samples, "process_cpu_seconds_total") is not None
        base = url.removesuffix("/metrics")
        assert httpx.get(f"{base}/healthz").status_code == 200
        assert httpx.get(f"{base}/readyz").status_code == 200
    # The bulk pool has run nothing here, but declares the same metrics.
    bulk = httpx.get(stack.processes["bulk-pool"].metrics_url).text
    for name in (
        "task_wait_seconds histogram",
        "task_run_seconds histogram",
        "tasks_total counter",
    ):
        assert f"# TYPE doorbuster_{name}" in bulk
