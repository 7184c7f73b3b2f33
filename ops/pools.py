"""Per pool: its workers, their concurrency and running tasks, through Celery's remote control.

A worker belongs to the pool whose queue it consumes (its row in `workers.pools`), whatever
its node name. Grow and shrink act on every worker of a pool: `prefork` and our `threads` pool
(`workers.threads`) support them; a worker started with `--autoscale` refuses them.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from celery import Celery

from workers.pools import POOLS, Pool, pool_of_queue

COLUMNS = ("pool", "queue", "workers", "concurrency", "active")


@dataclass
class WorkerInfo:
    name: str
    concurrency: int
    active: int
    implementation: str


@dataclass
class PoolRow:
    pool: str
    queue: str
    workers: int = 0
    concurrency: int = 0
    active: int = 0
    nodes: list[WorkerInfo] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ask_all(app: Celery, timeout: float) -> tuple[dict, dict, dict]:
    """active_queues, stats and active at once: each waits its whole timeout for replies."""
    methods = ("active_queues", "stats", "active")
    with ThreadPoolExecutor(len(methods)) as executor:
        futures = [
            executor.submit(lambda m: getattr(app.control.inspect(timeout=timeout), m)(), method)
            for method in methods
        ]
        queues, stats, active = (future.result() or {} for future in futures)
    return queues, stats, active


def workers_by_pool(app: Celery, timeout: float) -> dict[Pool, list[WorkerInfo]]:
    queues, stats, active = _ask_all(app, timeout)
    found: dict[Pool, list[WorkerInfo]] = {pool: [] for pool in Pool}
    for node, consumed in sorted(queues.items()):
        pools = {pool for q in consumed if (pool := pool_of_queue(q["name"])) is not None}
        info = (stats.get(node) or {}).get("pool") or {}
        worker = WorkerInfo(
            name=node,
            concurrency=int(info.get("max-concurrency", 0)),
            active=len(active.get(node) or []),
            implementation=str(info.get("implementation", "?")),
        )
        for pool in pools:
            found[pool].append(worker)
    return found


def pool_rows(app: Celery, timeout: float = 1.0) -> list[PoolRow]:
    rows = []
    for pool, workers in workers_by_pool(app, timeout).items():
        rows.append(
            PoolRow(
                pool=pool.value,
                queue=POOLS[pool].queue.value,
                workers=len(workers),
                concurrency=sum(worker.concurrency for worker in workers),
                active=sum(worker.active for worker in workers),
                nodes=workers,
            )
        )
    return rows


def resize(app: Celery, pool: Pool, delta: int, timeout: float = 1.0) -> dict[str, Any]:
    """Grow (delta > 0) or shrink every worker of `pool` by |delta|; the workers' replies."""
    nodes = [worker.name for worker in workers_by_pool(app, timeout)[pool]]
    if not nodes:
        return {}
    command = app.control.pool_grow if delta > 0 else app.control.pool_shrink
    replies = command(abs(delta), destination=nodes, reply=True, timeout=timeout) or []
    return {node: answer for reply in replies for node, answer in reply.items()}
