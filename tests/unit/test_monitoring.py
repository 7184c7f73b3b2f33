"""The Prometheus scrape config and the Grafana dashboard read the metrics the code exports:
every API and pool port is scraped, and the dashboard has a row per queue."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from shared.messaging.topology import QueueName
from workers.pools import POOLS

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PROMETHEUS = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
ON_KUBERNETES = yaml.safe_load((DEPLOY / "prometheus" / "prometheus-kubernetes.yml").read_text())
DASHBOARD = json.loads((DEPLOY / "grafana" / "doorbuster.json").read_text())
OUR_METRICS = {
    "doorbuster_http_requests_total",
    "doorbuster_http_request_seconds_bucket",
    "doorbuster_outbox_unpublished",
    "doorbuster_outbox_oldest_unpublished_age_seconds",
    "doorbuster_outbox_dispatcher_lag_seconds",
    "doorbuster_task_wait_seconds_bucket",
    "doorbuster_task_run_seconds_bucket",
    "doorbuster_tasks_total",
    "doorbuster_task_retries_total",
    "doorbuster_task_dead_letters_total",
}


def job(name: str, config: dict = PROMETHEUS) -> dict:
    [found] = [c for c in config["scrape_configs"] if c["job_name"] == name]
    return found


def targets(name: str) -> set[str]:
    config = job(name)
    return {target for group in config["static_configs"] for target in group["targets"]}


def test_prometheus_scrapes_every_api_and_the_first_instance_of_every_pool():
    assert {"127.0.0.1:8001", "127.0.0.1:8002", "127.0.0.1:8003"} <= targets("doorbuster-services")
    pool_ports = {f"127.0.0.1:{9100 + profile.metrics_offset}" for profile in POOLS.values()}
    assert pool_ports <= targets("doorbuster-pools")


def test_kubernetes_discovery_lives_in_its_own_file():
    """Debian's Prometheus has no Kubernetes discovery: the local file must load there."""
    assert "kubernetes_sd_configs" not in (DEPLOY / "prometheus" / "prometheus.yml").read_text()
    assert job("kubernetes-pods", ON_KUBERNETES)["kubernetes_sd_configs"] == [{"role": "pod"}]
    assert job("rabbitmq", ON_KUBERNETES)["params"] == job("rabbitmq")["params"]
    assert ON_KUBERNETES["rule_files"] == PROMETHEUS["rule_files"]


def test_rabbitmq_is_scraped_for_depth_consumers_and_the_head_message_timestamp():
    rabbitmq = job("rabbitmq")
    assert targets("rabbitmq") == {"127.0.0.1:15692"}
    assert rabbitmq["metrics_path"] == "/metrics/detailed"
    assert set(rabbitmq["params"]["family"]) == {
        "queue_coarse_metrics",  # ready, unacked, messages
        "queue_consumer_count",  # consumers
        "queue_metrics",  # head_message_timestamp
    }


def test_the_dashboard_has_a_row_per_queue():
    rows = [panel["title"] for panel in DASHBOARD["panels"] if panel["type"] == "row"]
    assert [f"Queue {queue.value}" for queue in QueueName] == [
        r for r in rows if r.startswith("Queue")
    ]


def test_every_dashboard_query_uses_a_metric_that_exists():
    used = set()
    for panel in DASHBOARD["panels"]:
        for target in panel.get("targets", []):
            used |= set(re.findall(r"\b(doorbuster_[a-z_]+)", target["expr"]))
    assert used == OUR_METRICS


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed (make test)")
def test_promtool_accepts_the_local_config_and_its_rules():
    checked = subprocess.run(
        ["promtool", "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml")],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
