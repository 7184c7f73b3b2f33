"""The Celery app every pool is made from: the topology (`shared.messaging.topology`), its row of
`workers.pools`, and settings.

Settings follow Celery's guidance for tasks that must not be lost: JSON only (pickle refused),
late acks, reject on a lost worker (the message goes back to the queue), failures after the
last retry rejected without requeue (so RabbitMQ dead-letters them to `<queue>.dlq`). Task
events are off: they cost a publish per task state, and Flower switches them on in every pool
(remote control `enable_events`) for as long as it runs.
"""

from __future__ import annotations

import logging

from celery import Celery, current_app, signals
from kombu import Exchange, Queue

from shared.infra.observability import configure_logging, init_sentry
from shared.infra.settings import Settings, get_settings
from shared.infra.tls import celery_broker_ssl
from shared.messages.orders import ExpireReservations, ReconcilePayments
from shared.messaging.message import all_messages
from shared.messaging.topology import (
    TASK_EXCHANGE,
    QueueName,
    queue_arguments,
    task_exchange_type,
)
from workers import metrics  # noqa: F401 - connects the metrics and probe signal handlers
from workers.pools import POOLS, Pool, all_task_modules


@signals.setup_logging.connect
def _logging(**_: object) -> None:
    """Workers log like the services: structured JSON with correlation ids."""
    settings = get_settings()
    # `doorbuster-payments` -> `payments-pool`: which pool a line came from.
    process = f"{current_app.main.removeprefix('doorbuster-')}-pool"
    configure_logging(process, settings.log_level, settings.log_json)
    # Celery's own "Task ... received" and "Task ... succeeded in" lines repeat the shell's one
    # line per task (shared.messaging.tasks); logging is a tenth of a pool's CPU. Its warnings
    # and errors stay.
    for chatty in ("celery.worker.strategy", "celery.app.trace"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, logging.getLogger().level))


@signals.worker_init.connect
def _sentry(**_: object) -> None:
    """Sentry (when SENTRY_DSN is set) with the Celery integration, before any task runs."""
    from sentry_sdk.integrations.celery import CeleryIntegration

    init_sentry(get_settings(), "worker", [CeleryIntegration()])


# Seconds (py-amqp's SO_RCVTIMEO/SO_SNDTIMEO): above the 5 s between the broker's heartbeats
# (`broker_heartbeat`, BROKER_HEARTBEAT_SECONDS 10), so an idle consumer's blocking read never
# times out.
BROKER_SOCKET_TIMEOUT = 8


def celery_queues(queue_type: str, declare: bool = True) -> list[Queue]:
    exchange = Exchange(TASK_EXCHANGE, type=task_exchange_type(queue_type), durable=True)
    return [
        Queue(
            queue.value,
            exchange,
            routing_key=queue.value,
            durable=True,
            queue_arguments=queue_arguments(queue, queue_type),
            no_declare=not declare,
        )
        for queue in QueueName
    ]


def make_celery(pool: Pool | None, settings: Settings | None = None) -> Celery:
    settings = settings or get_settings()
    # A pool loads its own task modules; no pool (Flower, beat, the ops CLI) knows every task.
    modules = all_task_modules() if pool is None else list(POOLS[pool].task_modules)
    app = Celery(f"doorbuster-{pool or 'all'}", broker=settings.rabbitmq_url, include=modules)
    app.conf.update(
        task_queues=celery_queues(settings.queue_type),
        task_routes={
            message.name: {"queue": message.route.queue.value, "routing_key": message.route.queue}
            for message in all_messages()
        },
        task_default_queue=QueueName.ORDERS.value,
        task_default_exchange=TASK_EXCHANGE,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        result_expires=3600,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=False,
        worker_prefetch_multiplier=1,
        worker_send_task_events=False,
        broker_connection_retry_on_startup=True,
        # A pool without its broker can do nothing else: it tries again for as long as it
        # takes (Celery's default gives up after 100 tries and the worker exits), and its
        # /readyz answers 503 meanwhile. The waits between tries: workers/consumer.py.
        broker_connection_max_retries=None,
        # Socket timeouts bound every blocking read and write of py-amqp (Celery's own waits
        # have none): on a broker alarm a publishing connection is not read any more, and a
        # retry's publish, then the close of its channel and connection, would wait for the
        # alarm to end (shared/messaging/tasks.py bounds the confirm itself).
        broker_transport_options={
            "confirm_publish": True,
            "read_timeout": BROKER_SOCKET_TIMEOUT,
            "write_timeout": BROKER_SOCKET_TIMEOUT,
        },
        broker_heartbeat=settings.broker_heartbeat_seconds,
        worker_hijack_root_logger=False,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        enable_utc=True,
        # Undecodable messages are dead-lettered instead of acked and lost (workers/consumer.py).
        worker_consumer="workers.consumer:DeadLetteringConsumer",
    )
    broker_ssl = celery_broker_ssl(settings)
    if broker_ssl is not None:
        app.conf.broker_use_ssl = broker_ssl
    if pool is not None:
        spec = POOLS[pool]
        # Which pool this worker is: its metrics exist at zero for every task it runs.
        app.conf.doorbuster_pool = pool.value
        app.conf.task_default_queue = spec.queue.value
        app.conf.worker_prefetch_multiplier = spec.prefetch_multiplier
    return app


def flower_app() -> Celery:
    """All tasks, no queue of its own: what Flower and remote control talk through."""
    return make_celery(None)


def beat_app(settings: Settings | None = None) -> Celery:
    """The scheduler: one per deployment, it only publishes the periodic tasks.

    It declares nothing: Celery would declare each task's queue before publishing, and
    declaring a queue with a dead-letter exchange needs read (consume) permission on it
    (RabbitMQ checks the DLX). The APIs and pools declare the topology; beat's broker user
    may only write to doorbuster.tasks (deploy/k8s/base/rabbitmq-users.yaml)."""
    settings = settings or get_settings()
    app = make_celery(None, settings)
    app.conf.task_queues = celery_queues(settings.queue_type, declare=False)
    app.conf.beat_schedule = {
        ExpireReservations.name: {
            "task": ExpireReservations.name,
            "schedule": settings.reservation_sweep_interval_seconds,
            "options": {
                "queue": ExpireReservations.route.queue.value,
                "priority": ExpireReservations.route.priority,
                # No `expires`: a sweep is idempotent and cheap, so one that waited out a pool
                # or broker outage simply runs late. With a message TTL it was dead-lettered
                # (reason `expired`) and read as a failure by `make audit` and the DLQ tools.
            },
        },
        ReconcilePayments.name: {
            "task": ReconcilePayments.name,
            "schedule": settings.reconcile_interval_seconds,
            "options": {
                "queue": ReconcilePayments.route.queue.value,
                "priority": ReconcilePayments.route.priority,
                "expires": settings.reconcile_interval_seconds,
            },
        },
    }
    return app
