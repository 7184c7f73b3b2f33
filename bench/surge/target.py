"""What the run is pointed at and runs on: the stack's health, the Stripe emulator's latency
knob, and the machine (the report names all of them next to the numbers)."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import UTC, datetime
from typing import Any

import httpx


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
