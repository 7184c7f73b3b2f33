"""Broker helpers for tests: publish as a service would, and wait for queues to drain."""

from __future__ import annotations

import asyncio
import time

import aio_pika

from shared.messaging.topology import QueueName


async def queue_depths(url: str) -> dict[str, int]:
    """Ready messages per queue (a passive declare: changes nothing)."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        depths = {}
        for queue in QueueName:
            declared = await channel.declare_queue(queue.value, passive=True)
            depths[queue.value] = declared.declaration_result.message_count
        return depths
    finally:
        await connection.close()


async def wait_drained(url: str, timeout: float = 30, settle: float = 1.5) -> None:
    """Until every queue is empty, then `settle` more seconds for tasks in progress."""
    deadline = time.monotonic() + timeout
    while any((await queue_depths(url)).values()):
        if time.monotonic() > deadline:
            raise AssertionError(f"queues not drained: {await queue_depths(url)}")
        await asyncio.sleep(0.2)
    await asyncio.sleep(settle)
