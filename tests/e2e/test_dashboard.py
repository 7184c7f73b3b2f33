"""What an operator's Prometheus sees: Debian's Prometheus with the shipped scrape config and
rules, against the running stack. Every queue and its dead-letter queue has depth, consumers
and the oldest message's age from the first scrape; every task of every pool has its series
before it runs."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.harness.prometheus import Prometheus, running_prometheus
from devtools.harness.stack import SLOT, Stack
from shared.queues import QueueName, dead_letter_queue
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
        wanted = {task.value for task in tasks_of(pool)}
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
