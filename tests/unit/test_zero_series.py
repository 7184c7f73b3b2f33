"""A pool's task series exist at zero before its first task: dashboards and alerts see every
task of every pool from the first scrape, and the first run is a visible increase."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from prometheus_client import REGISTRY

from workers import metrics
from workers.app import make_celery
from workers.pools import POOLS, Pool, tasks_of

OUTCOMES = ("succeeded", "failed", "retried", "rejected", "ignored")


def exported(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


@pytest.mark.parametrize("pool", list(Pool))
def test_every_task_of_a_pool_has_its_series_at_zero_before_it_runs(pool):
    queue = POOLS[pool].queue.value
    metrics.zero_series(pool)
    for task in tasks_of(pool):
        labels = {"queue": queue, "task": task}
        assert exported("doorbuster_task_wait_seconds_count", **labels) is not None
        assert exported("doorbuster_task_run_seconds_bucket", **labels, le="+Inf") is not None
        assert exported("doorbuster_task_retries_total", **labels) is not None
        for outcome in OUTCOMES:
            assert exported("doorbuster_tasks_total", **labels, outcome=outcome) is not None
        for reason in ("failed", "rejected"):
            assert (
                exported("doorbuster_task_dead_letters_total", **labels, reason=reason) is not None
            )
    assert exported("doorbuster_tasks_active", queue=queue) is not None


def test_each_pool_runs_the_tasks_routed_to_its_queue():
    assert tasks_of(Pool.PAYMENTS) == [
        "payments.charge",
        "payments.refund",
        "inventory.reserved",  # recorded and charged in one task
    ]
    assert set(tasks_of(Pool.ORDERS)) >= {
        "inventory.reserve",
        "inventory.rejected",
        "orders.apply_reservation",
        "orders.expire_reservations",
    }
    assert tasks_of(Pool.BULK) == ["notifications.send_campaign_batch"]


def test_the_worker_names_its_pool_so_its_series_start_at_init(monkeypatch):
    started = []
    monkeypatch.setattr(metrics, "zero_series", started.append)
    app = make_celery(Pool.NOTIFICATIONS)
    app.conf.doorbuster_metrics_port = 0
    metrics._on_worker_init(sender=SimpleNamespace(app=app, pool_cls="threads"))
    assert started == [Pool.NOTIFICATIONS]
