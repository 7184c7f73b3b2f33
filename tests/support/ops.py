"""Helpers for the ops tests: run the `doorbuster` CLI as an operator would and read the
management API (a worker's /metrics: devtools/harness/metrics.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

from devtools.harness.stack import ROOT

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
