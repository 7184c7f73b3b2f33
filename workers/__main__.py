"""Start one worker pool: `python -m workers <pool> [-c N] [-P TYPE] [--metrics-port PORT]`,
or the scheduler of periodic tasks: `python -m workers beat [--schedule FILE]` (one per
deployment).

One command per pool, scaled by running more of them (locally, on Kubernetes through KEDA).
Each pool consumes exactly its own queue and loads its task modules, with the defaults of its
row in `workers.pools`, and serves Prometheus metrics and its probes on its metrics port
(`workers.metrics`).
"""

from __future__ import annotations

import argparse
import os
import socket

from shared.infra.settings import get_settings, load_settings
from workers.pools import POOL_IMPLEMENTATIONS, POOLS, Pool, metrics_port


def worker_argv(pool: Pool, concurrency: int, name: str | None) -> list[str]:
    # No --pool here: the app's `worker_pool` setting names the implementation (a class path
    # for threads), which Celery's --pool choice list could not take.
    return [
        "worker",
        f"--queues={POOLS[pool].queue.value}",
        f"--concurrency={concurrency}",
        f"--hostname={name or f'{pool.value}@{socket.gethostname()}'}",
        "--without-gossip",
        "--without-mingle",
        # No --task-events: an event per task state costs a publish per task (about a tenth
        # of a pool's CPU, measured). Flower turns events on in the pools while it runs.
        "--loglevel=INFO",
    ]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m workers", description=__doc__)
    parser.add_argument("pool", choices=[pool.value for pool in Pool] + ["beat"])
    parser.add_argument("--schedule", default="var/celerybeat-schedule", help="beat only")
    parser.add_argument(
        "-c", "--concurrency", type=int, help="threads/processes (default: per pool)"
    )
    parser.add_argument(
        "-P", "--pool-type", choices=sorted(POOL_IMPLEMENTATIONS), help="(default: per pool)"
    )
    parser.add_argument("-n", "--name", help="worker node name (default: <pool>@<host>)")
    parser.add_argument(
        "--metrics-port",
        type=int,
        help="for /metrics /healthz /readyz (default: METRICS_PORT + pool offset; 0: off)",
    )
    return parser.parse_args(argv)


def run_beat(schedule: str) -> None:
    from workers.app import beat_app

    os.makedirs(os.path.dirname(schedule) or ".", exist_ok=True)
    beat_app().start(["beat", f"--schedule={schedule}", "--loglevel=INFO"])


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # Before the pool's module builds its Celery app: production with a development value
    # exits with one line naming every offending variable, not a traceback from the import.
    load_settings()
    if args.pool == "beat":
        run_beat(args.schedule)
        return
    from workers.app import make_celery

    pool = Pool(args.pool)
    spec = POOLS[pool]
    app = make_celery(pool)
    app.conf.worker_pool = POOL_IMPLEMENTATIONS[args.pool_type or spec.model]
    app.conf.doorbuster_metrics_port = (
        args.metrics_port if args.metrics_port is not None else metrics_port(pool, get_settings())
    )
    app.worker_main(worker_argv(pool, args.concurrency or spec.concurrency, args.name))


if __name__ == "__main__":
    main()
