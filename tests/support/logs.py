"""What the stack's processes logged: their JSON lines, read while the stack runs."""

from __future__ import annotations

import asyncio
import json
import time

from devtools.harness.stack import Stack


def task_lines(stack: Stack, process: str, task: str, order_id: str) -> list[dict]:
    """One process's JSON log lines about one task of one order, oldest first."""
    path = stack.logs / f"{process}.log"
    lines = path.read_text(errors="replace").splitlines() if path.exists() else []
    return [
        record
        for record in (json.loads(line) for line in lines if order_id in line and line[:1] == "{")
        if record.get("task") == task and record.get("order_id") == order_id
    ]


async def wait_task_succeeded(
    stack: Stack, process: str, task: str, order_id: str, timeout: float = 60
) -> None:
    """Until `process` logs that `task` for `order_id` succeeded (after its retries, if any)."""
    deadline = time.monotonic() + timeout
    while not any(
        record["event"] == "task succeeded" for record in task_lines(stack, process, task, order_id)
    ):
        if time.monotonic() > deadline:
            raise AssertionError(f"{process}: {task} for {order_id} did not succeed in {timeout}s")
        await asyncio.sleep(0.2)
