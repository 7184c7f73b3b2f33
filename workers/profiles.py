"""What each pool runs with: concurrency, pool type, prefetch, rate limits, metrics port.

Tasks do their I/O on the process's event loop (`shared.aio`), so a `threads` pool is cheap and
one process per worker keeps one connection pool and one metrics endpoint per process. The
numbers are defaults; `python -m workers <pool> -c N -P TYPE` overrides them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.config import Settings
from shared.queues import Pool, TaskName

# `-P threads` means this class: Celery's thread pool plus remote-control grow/shrink.
POOL_IMPLEMENTATIONS = {
    "threads": "workers.pool:GrowableThreadPool",
    "prefork": "prefork",
    "solo": "solo",
    "gevent": "gevent",
}


@dataclass(frozen=True)
class PoolProfile:
    concurrency: int
    pool_type: str
    # Messages fetched ahead per slot. One everywhere: with late acks a prefetched message
    # is invisible to other workers, and a charge published now must overtake a backlog.
    prefetch_multiplier: int = 1
    # Task name -> Celery rate limit, per worker (a `Settings` attribute name, read at start).
    rate_limit_settings: dict[TaskName, str] = field(default_factory=dict)
    # Worker metrics port = METRICS_PORT + offset + instance index (see `metrics_port`).
    metrics_offset: int = 0


PROFILES: dict[Pool, PoolProfile] = {
    # Waits ~200 ms on the payment provider per charge: many threads, prefetch one.
    Pool.PAYMENTS: PoolProfile(concurrency=16, pool_type="threads", metrics_offset=0),
    # Short database transactions.
    Pool.ORDERS: PoolProfile(concurrency=8, pool_type="threads", metrics_offset=10),
    # Order mail: SMTP round trips, never behind campaigns (its own queue and pool).
    Pool.NOTIFICATIONS: PoolProfile(concurrency=4, pool_type="threads", metrics_offset=20),
    # Campaign batches: few threads and a rate limit, so campaigns never starve order mail.
    Pool.BULK: PoolProfile(
        concurrency=2,
        pool_type="threads",
        rate_limit_settings={TaskName.SEND_CAMPAIGN_BATCH: "bulk_rate_limit"},
        metrics_offset=30,
    ),
}


def metrics_port(pool: Pool, settings: Settings, index: int = 0) -> int:
    """The metrics port of instance `index` of `pool` on one host (0: the server is off).

    One process per worker (threads pool), so one port per worker: several instances of a
    pool on a laptop (`make up POOLS="payments=3"`) take consecutive ports; on Kubernetes each
    pod has one worker and every pod uses the same port.
    """
    if not settings.metrics_port:
        return 0
    return settings.metrics_port + PROFILES[pool].metrics_offset + index


def task_annotations(pool: Pool, settings: Settings) -> dict[str, dict[str, str]]:
    profile = PROFILES[pool]
    return {
        name.value: {"rate_limit": getattr(settings, attribute)}
        for name, attribute in profile.rate_limit_settings.items()
    }
