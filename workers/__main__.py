"""Start one worker pool: `python -m workers <pool> [--concurrency N] [--pool-type T]`,
or the scheduler of periodic tasks: `python -m workers beat` (one per deployment).

One command per pool, scaled by running more of them (locally, on Kubernetes through KEDA).
Each pool consumes exactly its own queue, with defaults measured for its kind of work.
"""

from __future__ import annotations

import argparse
import importlib
import os
import socket
from dataclasses import dataclass

from shared.queues import POOL_QUEUE, Pool


@dataclass(frozen=True)
class PoolDefaults:
    concurrency: int
    pool_type: str


# Tasks run their I/O on the process's event loop (shared.aio), so threads are cheap; the
# payments pool waits ~200 ms on the provider per charge and gets the most of them.
DEFAULTS: dict[Pool, PoolDefaults] = {
    Pool.PAYMENTS: PoolDefaults(concurrency=16, pool_type="threads"),
    Pool.ORDERS: PoolDefaults(concurrency=8, pool_type="threads"),
    Pool.NOTIFICATIONS: PoolDefaults(concurrency=4, pool_type="threads"),
    Pool.BULK: PoolDefaults(concurrency=2, pool_type="threads"),
}


def worker_argv(pool: Pool, concurrency: int, pool_type: str, name: str | None) -> list[str]:
    return [
        "worker",
        f"--queues={POOL_QUEUE[pool].value}",
        f"--concurrency={concurrency}",
        f"--pool={pool_type}",
        f"--hostname={name or f'{pool.value}@{socket.gethostname()}'}",
        "--without-gossip",
        "--without-mingle",
        "--task-events",
        "--loglevel=INFO",
    ]


def run_beat(schedule: str) -> None:
    from workers.app import beat_app

    beat_app().start(["beat", f"--schedule={schedule}", "--loglevel=INFO"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m workers", description=__doc__)
    parser.add_argument("pool", choices=[pool.value for pool in Pool] + ["beat"])
    parser.add_argument("--schedule", default="var/celerybeat-schedule", help="beat only")
    parser.add_argument("-c", "--concurrency", type=int)
    parser.add_argument("-P", "--pool-type", choices=["prefork", "threads", "solo", "gevent"])
    parser.add_argument("-n", "--name", help="worker node name (default: <pool>@<host>)")
    args = parser.parse_args(argv)
    if args.pool == "beat":
        os.makedirs(os.path.dirname(args.schedule) or ".", exist_ok=True)
        run_beat(args.schedule)
        return
    pool = Pool(args.pool)
    defaults = DEFAULTS[pool]
    module = importlib.import_module(f"workers.{pool.value}")
    module.app.worker_main(
        worker_argv(
            pool,
            args.concurrency or defaults.concurrency,
            args.pool_type or defaults.pool_type,
            args.name,
        )
    )


if __name__ == "__main__":
    main()
