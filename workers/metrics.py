"""Prometheus metrics and probes of a worker process, fed by Celery's signals.

Per queue and task: how long a message waited between publish and start (our publisher's
`doorbuster_published_at` header, else the AMQP `timestamp`), how long it ran and how it ended,
retries, and dead letters (messages rejected without requeue, which RabbitMQ moves to
`<queue>.dlq`). The worker serves them, with `/healthz` and `/readyz`, on one port per process
(`workers.pools.metrics_port`). A prefork pool needs PROMETHEUS_MULTIPROC_DIR: its children
write their samples to files there and the parent serves their sum.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from celery import Task, signals
from celery.exceptions import Reject
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from shared.infra.settings import get_settings
from shared.messaging.message import route_of
from shared.messaging.wire import PUBLISHED_AT_HEADER
from workers.pools import POOLS, Pool, tasks_of

log = logging.getLogger(__name__)
LABELS = ["queue", "task"]
WAIT = Histogram(
    "doorbuster_task_wait_seconds",
    "Time a task message waited between publish and the start of its run",
    LABELS,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900),
)
RUN = Histogram(
    "doorbuster_task_run_seconds",
    "Task run time, whatever the outcome",
    LABELS,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
TASKS = Counter(
    "doorbuster_tasks",
    "Task runs by outcome: succeeded, failed, retried, rejected, ignored",
    [*LABELS, "outcome"],
)
RETRIES = Counter("doorbuster_task_retries", "Task runs that ended in a retry", LABELS)
DEAD_LETTERS = Counter(
    "doorbuster_task_dead_letters",
    "Messages rejected without requeue, i.e. dead-lettered to <queue>.dlq, by reason",
    [*LABELS, "reason"],
)
ACTIVE = Gauge(
    "doorbuster_tasks_active", "Tasks running now", ["queue"], multiprocess_mode="livesum"
)

OUTCOMES = {
    "SUCCESS": "succeeded",
    "FAILURE": "failed",
    "RETRY": "retried",
    "REJECTED": "rejected",
    "IGNORED": "ignored",
}
# A failure after the last retry is rejected without requeue (task_acks_on_failure_or_timeout
# is off), so it is a dead letter like an explicit Reject (an invalid payload).
DEAD_LETTER_OUTCOMES = {"failed", "rejected"}

_started: dict[str, float] = {}


def zero_series(pool: Pool) -> None:
    """Create every series of `pool`'s tasks at zero before the first one runs.

    A labelled series only exists once its labels are first used, so a dashboard or an
    alert (`rate(...)`, `histogram_quantile`, `absent`) sees nothing for a task that has not
    run yet, and the first increment is invisible to `rate` (no earlier sample). Poison the
    consumer refuses (workers/consumer.py) carries its own reasons and appears when it comes.
    """
    queue = POOLS[pool].queue.value
    ACTIVE.labels(queue)
    for task in tasks_of(pool):
        WAIT.labels(queue, task)
        RUN.labels(queue, task)
        RETRIES.labels(queue, task)
        for outcome in OUTCOMES.values():
            TASKS.labels(queue, task, outcome)
        for reason in DEAD_LETTER_OUTCOMES:
            DEAD_LETTERS.labels(queue, task, reason)


def queue_of(task_name: str, delivery_info: dict[str, Any] | None) -> str:
    routing_key = (delivery_info or {}).get("routing_key")
    if routing_key:
        return str(routing_key)
    try:
        return route_of(task_name).queue.value
    except KeyError:
        return "unknown"


def published_at(request: Any) -> float | None:
    """Epoch seconds the message was published, from our header or the AMQP timestamp."""
    header = getattr(request, PUBLISHED_AT_HEADER, None)
    if header is None:
        header = (getattr(request, "headers", None) or {}).get(PUBLISHED_AT_HEADER)
    if isinstance(header, int | float):
        return float(header)
    stamp = (getattr(request, "properties", None) or {}).get("timestamp")
    if isinstance(stamp, datetime):
        return (stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)).timestamp()
    if isinstance(stamp, int | float):
        return float(stamp)
    return None


@signals.task_prerun.connect
def _on_prerun(task_id: str, task: Task, **_: Any) -> None:
    queue = queue_of(task.name, task.request.delivery_info)
    sent = published_at(task.request)
    if sent is not None:
        WAIT.labels(queue, task.name).observe(max(0.0, time.time() - sent))
    ACTIVE.labels(queue).inc()
    _started[task_id] = time.perf_counter()


@signals.task_postrun.connect
def _on_postrun(
    task_id: str, task: Task, state: str | None = None, retval: Any = None, **_: Any
) -> None:
    queue = queue_of(task.name, task.request.delivery_info)
    started = _started.pop(task_id, None)
    if started is not None:
        RUN.labels(queue, task.name).observe(time.perf_counter() - started)
        ACTIVE.labels(queue).dec()
    outcome = OUTCOMES.get(state or "", (state or "unknown").lower())
    if isinstance(retval, Reject) and retval.requeue:
        # Back in its queue (a retry that could not be published): not a dead letter.
        outcome = "requeued"
    TASKS.labels(queue, task.name, outcome).inc()
    if outcome == "retried":
        RETRIES.labels(queue, task.name).inc()
    if outcome in DEAD_LETTER_OUTCOMES:
        DEAD_LETTERS.labels(queue, task.name, outcome).inc()


# Poison messages (unknown task, undecodable, oversized...) are counted by the consumer that
# dead-letters them (workers/consumer.py), with the reason as the label.


class WorkerProbe:
    """What /healthz and /readyz answer: alive until shutdown; ready while consuming."""

    def __init__(self) -> None:
        self.worker: Any = None
        self.ready = threading.Event()
        self.stopping = threading.Event()

    def is_alive(self) -> bool:
        return not self.stopping.is_set()

    def is_ready(self) -> bool:
        consumer = getattr(self.worker, "consumer", None)
        connection = getattr(consumer, "connection", None)
        return (
            self.ready.is_set()
            and not self.stopping.is_set()
            and bool(connection is not None and connection.connected)
        )


probe = WorkerProbe()


def metrics_registry() -> CollectorRegistry:
    folder = get_settings().prometheus_multiproc_dir
    if not folder:
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=folder)
    return registry


def make_handler(registry: CollectorRegistry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                self._status(probe.is_alive())
            elif path == "/readyz":
                self._status(probe.is_ready())
            else:
                self._send(404, b'{"status": "not found"}', "application/json")

        def _status(self, ok: bool) -> None:
            body = b'{"status": "ok"}' if ok else b'{"status": "unavailable"}'
            self._send(200 if ok else 503, body, "application/json")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:  # probes every few seconds: not worth a line
            pass

    return Handler


def serve(port: int, host: str) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((host, port), make_handler(metrics_registry()))
    thread = threading.Thread(target=server.serve_forever, name="doorbuster-metrics", daemon=True)
    thread.start()
    log.info("metrics, /healthz and /readyz on %s:%d", host, port)
    return server


@signals.worker_init.connect
def _on_worker_init(sender: Any = None, **_: Any) -> None:
    probe.worker = sender
    pool = sender.app.conf.get("doorbuster_pool") if sender else None
    if pool:
        zero_series(Pool(pool))
    if (
        "prefork" in str(getattr(sender, "pool_cls", ""))
        and not get_settings().prometheus_multiproc_dir
    ):
        log.warning(
            "prefork pool without PROMETHEUS_MULTIPROC_DIR: task metrics stay in the children"
        )
    port = int(sender.app.conf.get("doorbuster_metrics_port") or 0) if sender else 0
    if port:
        try:
            serve(port, get_settings().metrics_host)
        except OSError as exc:  # a worker without metrics beats no worker; /readyz says so
            log.error("cannot serve metrics on port %d: %s", port, exc)


@signals.worker_ready.connect
def _on_worker_ready(**_: Any) -> None:
    probe.ready.set()


@signals.worker_shutting_down.connect
def _on_shutting_down(**_: Any) -> None:
    probe.stopping.set()
