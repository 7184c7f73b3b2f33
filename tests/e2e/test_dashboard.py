"""What an operator's Prometheus sees: Debian's Prometheus with the shipped scrape config and
rules, against the running stack. Every queue and its dead-letter queue has depth, consumers
and the oldest message's age from the first scrape; every task of every pool has its series
before it runs; and with traffic, every query of the Grafana dashboard parses and returns
data."""

from __future__ import annotations

import asyncio
import json
import math
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.harness.prometheus import Prometheus, PromQLError, running_prometheus
from devtools.harness.shop import STOREFRONT, Shop, unique_sku, wait_status
from devtools.harness.stack import SLOT, Stack
from shared.messaging.topology import QueueName, dead_letter_queue
from tests.support.campaigns import Campaigns, addresses
from workers.pools import POOLS, Pool, tasks_of

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "doorbuster.json"
PROMETHEUS_PORT = 19090 + SLOT * 100
ALL_QUEUES = {q.value for q in QueueName} | {dead_letter_queue(q) for q in QueueName}

pytestmark = pytest.mark.skipif(
    shutil.which("prometheus") is None, reason="Debian's prometheus not installed (make test)"
)


@pytest.fixture(scope="module")
def prometheus(stack: Stack) -> Iterator[Prometheus]:
    with running_prometheus(stack.site.ports, PROMETHEUS_PORT) as running:
        yield running


def dashboard_queries(variables: dict[str, str]) -> list[tuple[str, str]]:
    """(panel title, expression) of every target, Grafana's variables substituted."""
    board = json.loads(DASHBOARD.read_text())
    queries = []
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            expr = re.sub(
                r"\$\{?(\w+)\}?",
                lambda match: variables[match.group(1)],
                target["expr"],
            )
            queries.append((panel["title"], expr))
    return queries


def grafana_variables(stack: Stack) -> dict[str, str]:
    board = json.loads(DASHBOARD.read_text())
    declared = {variable["name"] for variable in board["templating"]["list"]}
    # What Grafana would put in: the stack's vhost, and its built-in intervals.
    values = {"datasource": "prometheus", "vhost": stack.site.vhost}
    values |= {"__rate_interval": "1m", "__interval": "15s", "__range": "1h"}
    assert declared <= values.keys(), f"a dashboard variable this test does not know: {declared}"
    return values


def labels_of(result: list[dict], label: str) -> set[str]:
    return {series["metric"].get(label, "") for series in result}


def test_every_queue_and_dlq_has_depth_consumers_and_oldest_age(stack: Stack, prometheus):
    vhost = stack.site.vhost
    for metric in (
        "rabbitmq_detailed_queue_messages_ready",
        "rabbitmq_detailed_queue_messages_unacked",
        "rabbitmq_detailed_queue_consumers",
        "rabbitmq_detailed_queue_head_message_timestamp",
        "doorbuster:queue_oldest_message_age_seconds",
    ):
        expr = f'{metric}{{vhost="{vhost}"}}'
        deadline = time.monotonic() + 30
        while labels_of(prometheus.query(expr), "queue") < ALL_QUEUES:
            assert time.monotonic() < deadline, f"{metric}: {prometheus.query(expr)}"
            time.sleep(0.5)
    ages = prometheus.query(f'doorbuster:queue_oldest_message_age_seconds{{vhost="{vhost}"}}')
    assert all(float(series["value"][1]) >= 0 for series in ages), ages
    consumers = prometheus.query(f'doorbuster:queue_consumers{{vhost="{vhost}"}} >= 1')
    consumed = labels_of(consumers, "queue") & ALL_QUEUES  # not Celery's pidbox queues
    assert consumed == {spec.queue.value for spec in POOLS.values()}


def test_every_task_of_every_pool_has_its_series_before_it_runs(prometheus):
    for pool in Pool:
        queue = POOLS[pool].queue.value
        wanted = set(tasks_of(pool))
        for metric in (
            f'doorbuster_tasks_total{{queue="{queue}", outcome="succeeded"}}',
            f'doorbuster_task_run_seconds_count{{queue="{queue}"}}',
            f'doorbuster_task_wait_seconds_bucket{{queue="{queue}", le="+Inf"}}',
            f'doorbuster_task_dead_letters_total{{queue="{queue}", reason="failed"}}',
        ):
            found = labels_of(prometheus.wait_for(metric, timeout=30), "task")
            assert wanted <= found, (pool, metric, wanted - found)
    up = {
        (target["labels"]["job"], target["scrapeUrl"])
        for target in prometheus.targets()
        if target["health"] == "up"
    }
    assert {job for job, _ in up} == {"doorbuster-services", "doorbuster-pools", "rabbitmq"}
    assert len([url for job, url in up if job == "doorbuster-pools"]) == len(Pool)


def drawable(result: list[dict]) -> bool:
    """At least one series with a number Grafana can draw (a quantile of nothing is NaN)."""
    return any(math.isfinite(float(series["value"][1])) for series in result)


async def shop_traffic(shop: Shop, campaigns: Campaigns) -> None:
    """Paid and declined orders, a refund, and a small campaign: every queue does work."""
    sku = unique_sku("DASH")
    await shop.put_product(sku, stock=50)
    paid = [await shop.place_order([(sku, 1)]) for _ in range(8)]
    declined = [
        await shop.place_order([(sku, 1)], payment_method="pm_card_chargeDeclined")
        for _ in range(2)
    ]
    orders = [response.json()["id"] for response in paid + declined]
    await asyncio.gather(*(shop.wait_final(order_id, timeout=60) for order_id in orders))
    refund = await shop.orders.post(f"/v1/orders/{orders[0]}/cancel", headers=STOREFRONT)
    assert refund.status_code == 202, refund.text
    await wait_status(shop, orders[0], "refunded", timeout=60)
    await campaigns.import_subscribers(addresses(f"dash{unique_sku('')}", 5))
    campaign = await campaigns.create()
    await campaigns.wait_status(campaign["id"], {"completed"}, timeout=60)


@pytest.mark.usefixtures("no_subscribers")
async def test_every_dashboard_query_parses_and_returns_data(
    stack: Stack, shop: Shop, campaigns: Campaigns, prometheus: Prometheus
):
    await shop_traffic(shop, campaigns)
    queries = dashboard_queries(grafana_variables(stack))
    assert len(queries) >= 20
    empty: list[tuple[str, str]] = []
    deadline = time.monotonic() + 45
    pending = queries
    while pending:
        # A refused query is a defect of the dashboard: fail on it at once.
        empty = [(title, expr) for title, expr in pending if not drawable(prometheus.query(expr))]
        if not empty or time.monotonic() > deadline:
            break
        pending = empty
        await asyncio.sleep(1)
    assert not empty, "dashboard queries without a number to draw:\n" + "\n".join(
        f"  {title}: {expr}" for title, expr in empty
    )


def test_a_query_prometheus_cannot_parse_is_refused(prometheus: Prometheus):
    """The check above would see a broken expression: Prometheus refuses it, it is not empty."""
    with pytest.raises(PromQLError, match="bad_data"):
        prometheus.query("sum(rate(doorbuster_tasks_total[1m])")
