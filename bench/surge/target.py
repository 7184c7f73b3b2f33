"""What the run is pointed at and runs on: the stack's health, the Stripe emulator's latency
knob, and the machine (the report names all of them next to the numbers)."""

from __future__ import annotations

import os
import platform
import subprocess
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.surge import journal


def unhealthy(urls: dict[str, str]) -> list[str]:
    """The services among `urls` whose /healthz does not answer 200."""
    down = []
    for name, url in urls.items():
        try:
            ok = httpx.get(f"{url}/healthz", timeout=5).status_code == 200
        except httpx.HTTPError:
            ok = False
        if not ok:
            down.append(f"{name} ({url})")
    return down


def emulator_config(stripe_url: str) -> dict[str, Any] | None:
    """The emulator's runtime settings, or None when `stripe_url` is not our emulator."""
    try:
        response = httpx.get(f"{stripe_url}/_emulator/config", timeout=5)
    except httpx.HTTPError:
        return None
    return response.json() if response.status_code == 200 else None


def set_emulator_latency(stripe_url: str, latency_ms: float) -> None:
    response = httpx.post(
        f"{stripe_url}/_emulator/config", json={"latency_ms": latency_ms}, timeout=5
    )
    response.raise_for_status()


def machine() -> dict[str, Any]:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cores (nproc)": os.cpu_count(),
        "memory": f"{memory:.1f} GiB",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "system": f"{platform.system()} {platform.release()} {platform.machine()}",
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load average at the start": " ".join(f"{load:.2f}" for load in os.getloadavg()),
        "revision": git_revision(),
    }


def git_revision() -> str:
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out.stdout.strip()


class MachineSampler(threading.Thread):
    """CPU busy once a second: the whole machine's, and the share the Locust process takes
    (both in % of all cores), with the load average. On a shared 2-core machine this is what
    tells a slow stack from a starved one."""

    def __init__(self, folder: Path, interval: float = 1.0):
        super().__init__(name="machine", daemon=True)
        self.path, self.interval = folder / journal.MACHINE, interval
        self.locust: psutil.Process | None = None
        self._stop_event = threading.Event()

    def watch(self, pid: int) -> None:
        try:
            self.locust = psutil.Process(pid)
            self.locust.cpu_percent(None)  # the first reading only starts the clock
        except psutil.Error:
            self.locust = None

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)

    def run(self) -> None:
        out = journal.CsvAppender(self.path, journal.MACHINE_COLUMNS)
        cores = psutil.cpu_count() or 1
        psutil.cpu_percent(None)
        try:
            while not self._stop_event.wait(self.interval):
                out.row(
                    f"{time.time():.3f}",
                    psutil.cpu_percent(None),
                    round(self._locust_percent() / cores, 1),
                    os.getloadavg()[0],
                )
        finally:
            out.close()

    def _locust_percent(self) -> float:
        try:
            return self.locust.cpu_percent(None) if self.locust is not None else 0.0
        except psutil.Error:
            return 0.0
