"""The baseline the campaign path is measured against: one plain Celery task per mail, each
opening its own SMTP connection, on a pool of the bulk pool's size and settings (threads, 2,
late acks, prefetch 1, JSON). The message is the same pre-rendered campaign mail, so the two
arms differ only in tasks and connections per mail.

`python -m bench.one_mail_worker` starts it (the bench does); it consumes only `bench.one_mail`,
a queue that exists only in the bench's own vhost (the app's topology is left alone).
"""

from __future__ import annotations

from functools import cache

import aiosmtplib
from celery import Celery
from kombu import Exchange, Queue

from services.notifications.templates import CampaignMail
from shared.infra.aio import worker_loop
from shared.infra.settings import Settings, get_settings
from shared.messaging.topology import TASK_EXCHANGE
from workers.app import make_celery
from workers.pools import POOL_IMPLEMENTATIONS, POOLS, Pool

QUEUE = "bench.one_mail"
TASK = "bench.send_one_mail"
SUBJECT, BODY = "Doorbuster deals", "Everything 50% off, today only.\n" * 8


def make_app(settings: Settings | None = None) -> Celery:
    """The bulk pool's Celery app, consuming and routing only the baseline's queue."""
    celery = make_celery(Pool.BULK, settings)
    celery.conf.update(
        task_queues=[
            Queue(QUEUE, Exchange(TASK_EXCHANGE, "direct", durable=True), routing_key=QUEUE)
        ],
        task_routes={TASK: {"queue": QUEUE, "routing_key": QUEUE}},
        task_default_queue=QUEUE,
    )
    return celery


app = make_app()


@cache
def _mail(run: str) -> CampaignMail:
    return CampaignMail(run, SUBJECT, BODY, get_settings().mail_from)


async def _send(run: str, subscriber_id: int, email: str) -> None:
    settings = get_settings()
    await aiosmtplib.send(
        _mail(run).render(subscriber_id, email),
        sender="orders@doorbuster.test",
        recipients=[email],
        hostname=settings.smtp_host,
        port=settings.smtp_port,
        start_tls=False,
        timeout=settings.smtp_timeout_seconds,
    )


@app.task(name=TASK)
def send_one_mail(run: str, subscriber_id: int, email: str) -> None:
    """One mail, one connection: what a naive fan-out does."""
    worker_loop.run(_send(run, subscriber_id, email))


def main() -> None:
    profile = POOLS[Pool.BULK]
    # The bulk pool's own implementation (Celery's threads, growable), set as `python -m
    # workers bulk` sets it: the class path cannot go through --pool.
    app.conf.worker_pool = POOL_IMPLEMENTATIONS[profile.model]
    app.worker_main(
        [
            "worker",
            f"--queues={QUEUE}",
            f"--concurrency={profile.concurrency}",
            "--hostname=baseline@%h",
            "--without-gossip",
            "--without-mingle",
            "--loglevel=WARNING",
        ]
    )


if __name__ == "__main__":
    main()
