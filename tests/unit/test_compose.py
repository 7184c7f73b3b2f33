"""compose.yaml cannot run here (no Docker engine), so it is parsed and checked instead."""

from pathlib import Path

import yaml

from workers.pools import POOLS, Pool

COMPOSE = yaml.safe_load((Path(__file__).resolve().parents[2] / "compose.yaml").read_text())
SERVICES = COMPOSE["services"]


def test_it_runs_every_api_pool_and_dependency():
    expected = {"rabbitmq", "postgres", "stripe-emulator", "smtp-sink", "migrate"}
    expected |= {f"{name}-api" for name in ("orders", "inventory", "notifications")}
    expected |= {f"{pool.value}-pool" for pool in Pool}
    assert expected <= set(SERVICES)


def test_every_long_running_service_has_a_health_check():
    for name, service in SERVICES.items():
        if name != "migrate":
            assert "healthcheck" in service, name


def test_pools_start_with_the_documented_command():
    for pool in Pool:
        assert SERVICES[f"{pool.value}-pool"]["command"] == ["python", "-m", "workers", pool.value]


def test_apps_wait_for_healthy_broker_database_and_migrations():
    for name in ("orders-api", "payments-pool", "bulk-pool"):
        depends = SERVICES[name]["depends_on"]
        assert depends["rabbitmq"]["condition"] == "service_healthy"
        assert depends["postgres"]["condition"] == "service_healthy"
        assert depends["migrate"]["condition"] == "service_completed_successfully"


def test_every_pool_sets_its_replicas_and_payments_runs_more_than_one():
    for pool in Pool:
        assert SERVICES[f"{pool.value}-pool"]["deploy"]["replicas"] >= 1
    assert SERVICES["payments-pool"]["deploy"]["replicas"] >= 2


def test_pool_health_checks_ask_the_workers_readiness_on_its_metrics_port():
    for pool in Pool:
        port = 9100 + POOLS[pool].metrics_offset
        check = " ".join(SERVICES[f"{pool.value}-pool"]["healthcheck"]["test"])
        assert f"http://127.0.0.1:{port}/readyz" in check
