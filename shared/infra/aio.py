"""Run the async handlers from Celery's synchronous tasks.

Each worker process keeps one event loop in a background thread; a task submits its coroutine
there and waits. The database engine, the publisher and the HTTP clients live on that loop, so
a process shares one connection pool whatever the Celery pool type (prefork, threads, solo).
The loop is made lazily in the process that uses it: a forked child never inherits a loop.
It is uvloop's where uvloop is installed (every pool's loop: asyncpg, aio-pika and aiohttp
sockets, timers and callbacks in C), the stdlib's otherwise.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # not on Windows: the stdlib's loop does the same, slower
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class BackgroundLoop:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid: int | None = None
        self._lock = threading.Lock()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run `coro` on this process's loop and return its result (or raise its error).

        The caller's context variables (correlation id, task attempt) go along with it.
        """
        context = contextvars.copy_context()

        async def in_callers_context() -> T:
            for variable, value in context.items():
                variable.set(value)
            return await coro

        future = asyncio.run_coroutine_threadsafe(in_callers_context(), self._ensure_loop())
        return future.result(timeout)

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._pid != os.getpid():
                self._loop = new_event_loop()
                self._pid = os.getpid()
                thread = threading.Thread(
                    target=self._loop.run_forever, name="doorbuster-loop", daemon=True
                )
                thread.start()
            return self._loop


worker_loop = BackgroundLoop()
