"""When is a local stack ready: every planned process answers its readiness probe.

An API answers `/readyz` (its database and the broker), a pool `/readyz` on its metrics port
(consuming), the emulator its health URL, the SMTP sink a TCP connect; a process without a
probe (beat) is ready while it runs. `make up` and the stack harness ask the same question.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Sequence

import httpx

from devtools.plan import Process


def answers(url: str) -> bool:
    """An HTTP health URL answers 200, or a tcp://host:port accepts a connection."""
    if url.startswith("tcp://"):
        host, _, port = url.removeprefix("tcp://").partition(":")
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
            return True
        except OSError:
            return False
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def wait_until_ready(
    processes: Sequence[Process],
    gave_up: Callable[[], bool],
    timeout: float,
    interval: float = 0.25,
) -> list[Process]:
    """Poll every probe until all answer, `gave_up()` says stop, or `timeout` passes; returns
    the processes that never answered (none: the stack is ready)."""
    pending = [process for process in processes if process.health_url]
    deadline = time.monotonic() + timeout
    while pending and not gave_up() and time.monotonic() < deadline:
        pending = [process for process in pending if not answers(process.health_url or "")]
        if pending:
            time.sleep(interval)
    return pending
