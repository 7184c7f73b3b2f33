"""What runs on each pool, in one table: the queue it consumes, the task modules it loads, its
concurrency model and default concurrency, prefetch, rate limits and metrics port.

A pool is not a service. It consumes exactly one queue and loads the `tasks` modules of the
services whose task bodies run there (a task body lives in the service that owns the data it
writes, so `inventory.reserve` runs on the orders pool as inventory code). `python -m workers
<pool>`, `make up` (devtools/plan.py), `doorbuster pools`, the benchmarks and the tests of the
Kubernetes and compose manifests all read this table; nothing else says what a pool runs.

Tasks do their I/O on the process's event loop (`shared.infra.aio`), so a `threads` pool is cheap
and one process per worker keeps one connection pool and one metrics endpoint per process. The
numbers are defaults: `python -m workers <pool> -c N -P MODEL` overrides them.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from enum import StrEnum

from shared.infra.settings import Settings
from shared.messaging.message import all_messages
from shared.messaging.topology import QueueName


class Pool(StrEnum):
    PAYMENTS = "payments"
    ORDERS = "orders"
    NOTIFICATIONS = "notifications"
    BULK = "bulk"


# Concurrency model -> Celery's pool implementation. `threads` is Celery's thread pool plus
# the remote-control grow/shrink it lacks (workers/threads.py).
POOL_IMPLEMENTATIONS = {
    "threads": "workers.threads:GrowableThreadPool",
    "prefork": "prefork",
    "solo": "solo",
    "gevent": "gevent",
}


@dataclass(frozen=True)
class PoolSpec:
    queue: QueueName
    # The `services.<x>.tasks` modules whose tasks this pool runs.
    task_modules: tuple[str, ...]
    model: str  # a key of POOL_IMPLEMENTATIONS
    concurrency: int
    # The metrics port of instance i is METRICS_PORT (9100) + this offset + i (`metrics_port`).
    metrics_offset: int
    # Messages fetched ahead per slot. One everywhere: with late acks a prefetched message
    # is invisible to other workers, and a charge published now must overtake a backlog.
    prefetch_multiplier: int = 1


POOLS: dict[Pool, PoolSpec] = {
    # Charges and refunds (orders code): ~200 ms on the payment provider per charge, so many
    # threads; threads x 16 ran 51 charges/s, prefork x 2 ran 9 (docs/benchmarks.md).
    Pool.PAYMENTS: PoolSpec(
        queue=QueueName.PAYMENTS,
        task_modules=("services.orders.tasks",),
        model="threads",
        concurrency=16,
        metrics_offset=0,
    ),
    # Reserve, release, order state changes, expiry sweeps: short database transactions.
    Pool.ORDERS: PoolSpec(
        queue=QueueName.ORDERS,
        task_modules=("services.orders.tasks", "services.inventory.tasks"),
        model="threads",
        concurrency=8,
        metrics_offset=10,
    ),
    # Order mail: SMTP round trips, never behind campaigns (its own queue and pool).
    Pool.NOTIFICATIONS: PoolSpec(
        queue=QueueName.TRANSACTIONAL,
        task_modules=("services.notifications.tasks",),
        model="threads",
        concurrency=4,
        metrics_offset=20,
    ),
    # Campaign batches: few threads, paced inside the batch by the pool-wide mail limiter
    # (BULK_MAIL_RATE_PER_SECOND) only while it sends, so campaigns never starve order mail
    # and a paused or cancelled campaign's queued batches drain at once. (A Celery rate limit
    # per batch throttled the batches that send nothing too: 60 took 12 s after a cancel.)
    Pool.BULK: PoolSpec(
        queue=QueueName.BULK,
        task_modules=("services.notifications.tasks",),
        model="threads",
        concurrency=2,
        metrics_offset=30,
    ),
}


def all_task_modules() -> list[str]:
    """Every pool's task modules: for the apps that consume nothing (beat, Flower, the CLI)."""
    return sorted({module for spec in POOLS.values() for module in spec.task_modules})


def tasks_of(pool: Pool) -> list[str]:
    """The tasks routed to the queue `pool` consumes: what its workers run."""
    return [m.name for m in all_messages() if m.route.queue == POOLS[pool].queue]


def pool_of_queue(queue: str) -> Pool | None:
    """The pool that consumes `queue` (None for a queue no pool consumes)."""
    return next((pool for pool, spec in POOLS.items() if spec.queue == queue), None)


def metrics_port(pool: Pool, settings: Settings, index: int = 0) -> int:
    """The metrics port of instance `index` of `pool` on one host (0: the server is off).

    One process per worker (threads pool), so one port per worker: several instances of a
    pool on a laptop (`make up POOLS="payments=3"`) take consecutive ports; on Kubernetes each
    pod has one worker and every pod uses the same port.
    """
    if not settings.metrics_port:
        return 0
    return settings.metrics_port + POOLS[pool].metrics_offset + index


def instance_argv(
    pool: Pool, name: str, metrics_port: int, python: str = sys.executable
) -> list[str]:
    """The command line of one local process of `pool`, as `make up` (devtools/plan.py) and
    the local autoscaler (ops/autoscale.py) start it; `name` becomes the node `<name>@<host>`."""
    return [
        python,
        "-m",
        "workers",
        pool.value,
        "--name",
        f"{name}@%h",
        "--metrics-port",
        str(metrics_port),
    ]
