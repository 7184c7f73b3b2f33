"""Open-loop load: arrivals at a fixed rate whatever the answers' latency (a slow system does
not slow its shoppers down, as it would in a closed loop), as every bench's storefront needs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


async def at_rate(rate: float, seconds: float, action: Callable[[], Awaitable[None]]) -> None:
    """Start `action()` every 1/`rate` seconds for `seconds`, then wait for all of them."""
    started = time.monotonic()
    tasks = []
    for n in range(int(rate * seconds)):
        await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
        tasks.append(asyncio.create_task(action()))
    await asyncio.gather(*tasks)
