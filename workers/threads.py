"""A `threads` pool that Celery's remote control can grow and shrink.

Celery 5.7's thread pool (`celery.concurrency.thread:TaskPool`) has no `grow`/`shrink`, so
`celery control pool_grow` (and `doorbuster pool grow`) fails on it; prefork supports both.
This subclass adds them. The worker admits at most `limit` tasks at once because its prefetch
count is `limit x prefetch multiplier` (Celery updates it after a grow or shrink), so:

- grow raises the limit and lets the executor start up to that many threads;
- shrink lowers the limit; surplus threads stay idle in the executor (a thread cannot be
  stopped from outside), which costs a little memory and no work.
"""

from __future__ import annotations

from celery.concurrency.thread import TaskPool


class GrowableThreadPool(TaskPool):
    def grow(self, n: int = 1) -> None:
        self._resize(self.limit + n)

    def shrink(self, n: int = 1) -> None:
        self._resize(max(1, self.limit - n))

    def _resize(self, limit: int) -> None:
        self.limit = limit
        # ThreadPoolExecutor starts threads lazily up to `_max_workers`; it has no public setter.
        self.executor._max_workers = max(self.executor._max_workers, limit)

    @property
    def num_processes(self) -> int:
        return self.limit
