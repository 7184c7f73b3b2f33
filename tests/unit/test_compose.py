"""compose.yaml cannot run here (no Docker engine), so it is parsed and checked instead."""

from pathlib import Path

import yaml

from shared.queues import Pool

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
