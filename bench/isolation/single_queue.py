"""The baseline of bench.isolation: the same tasks as a default Celery deployment runs them.

Every task routed to Celery's default queue `celery` (no `x-max-priority`, so the priorities
our messages carry mean nothing there, as on any queue declared without it), consumed by ONE
worker with the total concurrency of our four pools (threads, prefetch 1, late acks, and the
bulk pool's rate limit on campaign batches: the same throttle). Nothing is copied: this module
rewrites the routing table of `shared.messaging.topology` in its own process before anything
publishes, then runs our own code:

    python -m bench.isolation.single_queue run uvicorn services.orders.main:create_app --factory ...
    python -m bench.isolation.single_queue run workers beat --schedule FILE
    python -m bench.isolation.single_queue worker [--concurrency 30] [--metrics-port PORT]

Our publisher still declares the four dedicated queues (its topology); nothing routes to them.
The bench declares `celery` and binds it before the first publish (`declare`).
"""

from __future__ import annotations

import argparse
import runpy
import sys
from enum import StrEnum

import aio_pika
from celery import Celery
from kombu import Exchange, Queue

from shared.messaging.message import all_messages
from shared.messaging.topology import TASK_EXCHANGE, Route
from workers.pools import POOL_IMPLEMENTATIONS, POOLS


class DefaultQueue(StrEnum):
    CELERY = "celery"


QUEUE = DefaultQueue.CELERY.value
# The same number of worker threads as our four pools have together (16 + 8 + 4 + 2).
CONCURRENCY = sum(profile.concurrency for profile in POOLS.values())


def reroute() -> None:
    """Every task to the one queue, at its usual priority (which that queue ignores)."""
    for message in all_messages():
        message.route = Route(DefaultQueue.CELERY, message.route.priority)  # type: ignore[arg-type,misc]


async def declare(amqp_url: str) -> None:
    """The queue `celery`, bound to our task exchange, as Celery declares its default queue."""
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(
            TASK_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True
        )
        queue = await channel.declare_queue(QUEUE, durable=True)
        await queue.bind(exchange, routing_key=QUEUE)
    finally:
        await connection.close()


def make_app() -> Celery:
    """Our Celery app with every task module, consuming and routing only `celery`."""
    from workers.app import make_celery

    app = make_celery(None)
    app.conf.update(
        task_queues=[
            Queue(QUEUE, Exchange(TASK_EXCHANGE, "direct", durable=True), QUEUE, durable=True)
        ],
        task_default_queue=QUEUE,
        worker_prefetch_multiplier=1,
        worker_pool=POOL_IMPLEMENTATIONS["threads"],
    )
    return app


def run_worker(concurrency: int, metrics_port: int) -> None:
    app = make_app()
    app.conf.doorbuster_metrics_port = metrics_port
    app.worker_main(
        [
            "worker",
            f"--queues={QUEUE}",
            f"--concurrency={concurrency}",
            "--hostname=single@%h",
            "--without-gossip",
            "--without-mingle",
            "--loglevel=INFO",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.isolation.single_queue", description=__doc__
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run a module (`python -m` style), rerouted")
    run.add_argument("module")
    run.add_argument("args", nargs=argparse.REMAINDER)
    worker = commands.add_parser("worker", help="the one worker of every task")
    worker.add_argument("-c", "--concurrency", type=int, default=CONCURRENCY)
    worker.add_argument("--metrics-port", type=int, default=0)
    args = parser.parse_args(argv)
    reroute()
    if args.command == "worker":
        run_worker(args.concurrency, args.metrics_port)
    else:
        sys.argv = [args.module, *args.args]
        runpy.run_module(args.module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
