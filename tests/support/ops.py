"""Helpers for the ops tests: run the `doorbuster` CLI as an operator would, read the management
API and a worker's /metrics."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.stack import ROOT

MANAGEMENT = "http://127.0.0.1:15672"
T = TypeVar("T")


def management_answers() -> bool:
    try:
        return httpx.get(
            f"{MANAGEMENT}/api/overview", auth=("guest", "guest"), timeout=2
        ).is_success
    except httpx.HTTPError:
        return False


def wait_for_management(timeout: float = 30) -> bool:
    """The plugin takes a few seconds to serve after `rabbitmq-plugins enable`."""
    deadline = time.monotonic() + timeout
    while not management_answers():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


def doorbuster(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """`doorbuster ARGS` in a subprocess with `env`: settings are read as in production."""
    done = subprocess.run(
        [str(Path(sys.executable).parent / "doorbuster"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"doorbuster {' '.join(args)} exited {done.returncode}: {done.stderr}")
    return done


def doorbuster_json(env: dict[str, str], *args: str) -> Any:
    return json.loads(doorbuster(env, *args, "--json").stdout)


def eventually(probe: Callable[[], T], accept: Callable[[T], bool], timeout: float = 20) -> T:
    """Poll until `accept(probe())`; management statistics refresh every 5 s."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if accept(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still {value!r} after {timeout}s")
        time.sleep(0.5)


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Prometheus text -> {(sample name, labels): value}."""
    response = httpx.get(url, timeout=5)
    response.raise_for_status()
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def sample(samples: dict, name: str, **labels: str) -> float | None:
    """The value of `name` whose labels include `labels` (summed if several match)."""
    wanted = set(labels.items())
    values = [
        value
        for (sample_name, got), value in samples.items()
        if sample_name == name and wanted <= got
    ]
    return sum(values) if values else None
