"""The shipped alerting rules are unit-tested with promtool, and every alert has a test."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

PROMETHEUS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
ALERTS = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
TESTS = yaml.safe_load((PROMETHEUS / "alerts_test.yml").read_text())
OPERATIONS = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()


def alert_names() -> set[str]:
    return {rule["alert"] for group in ALERTS["groups"] for rule in group["rules"]}


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed (make test)")
def test_promtool_passes_the_alert_unit_tests():
    run = subprocess.run(
        ["promtool", "test", "rules", "alerts_test.yml"],
        cwd=PROMETHEUS,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_every_alert_fires_in_a_test_and_is_explained_for_the_operator():
    fired = {
        case["alertname"]
        for test in TESTS["tests"]
        for case in test.get("alert_rule_test", [])
        if case["exp_alerts"]
    }
    assert fired == alert_names()
    for name in alert_names():
        assert f"`{name}`" in OPERATIONS, f"docs/operations.md does not explain {name}"


def test_both_scrape_configs_load_the_alerts():
    for config in ("prometheus.yml", "prometheus-kubernetes.yml"):
        assert "alerts.yml" in yaml.safe_load((PROMETHEUS / config).read_text())["rule_files"]
