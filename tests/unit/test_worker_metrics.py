"""Worker metrics from Celery's signals: wait from our publish stamp, run time, outcome, dead
letters, with `queue` and `task` labels."""

from datetime import UTC, datetime
from types import SimpleNamespace

from prometheus_client import REGISTRY

from shared.messaging.wire import PUBLISHED_AT_HEADER
from workers import metrics


def fake_task(name: str, **request: object) -> SimpleNamespace:
    defaults = {"delivery_info": {"routing_key": "payments"}, "properties": {}, "headers": {}}
    return SimpleNamespace(name=name, request=SimpleNamespace(**{**defaults, **request}))


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_wait_comes_from_our_header_or_the_amqp_timestamp():
    assert metrics.published_at(SimpleNamespace(**{PUBLISHED_AT_HEADER: 12.5})) == 12.5
    stamp = datetime(2026, 11, 27, tzinfo=UTC)
    request = SimpleNamespace(properties={"timestamp": stamp.replace(tzinfo=None)})
    assert metrics.published_at(request) == stamp.timestamp()
    assert metrics.published_at(SimpleNamespace(properties={})) is None


def test_the_queue_label_falls_back_to_the_route():
    assert metrics.queue_of("payments.charge", {"routing_key": "payments"}) == "payments"
    assert metrics.queue_of("notifications.send_order_mail", None) == "notifications.transactional"
    assert metrics.queue_of("no.such.task", {}) == "unknown"


def test_a_run_is_timed_and_counted_by_outcome():
    labels = {"queue": "payments", "task": "payments.refund"}
    before = {
        name: value(name, **labels)
        for name in ("doorbuster_task_wait_seconds_count", "doorbuster_task_run_seconds_count")
    }
    for state in ("SUCCESS", "RETRY", "FAILURE", "REJECTED"):
        task = fake_task("payments.refund", **{PUBLISHED_AT_HEADER: 1.0})
        metrics._on_prerun(task_id=f"t-{state}", task=task)
        metrics._on_postrun(task_id=f"t-{state}", task=task, state=state)
    assert (
        value("doorbuster_task_wait_seconds_count", **labels)
        == before["doorbuster_task_wait_seconds_count"] + 4
    )
    assert value("doorbuster_task_run_seconds_count", **labels) >= 4
    assert value("doorbuster_tasks_total", outcome="succeeded", **labels) >= 1
    assert value("doorbuster_task_retries_total", **labels) >= 1
    assert value("doorbuster_task_dead_letters_total", reason="failed", **labels) >= 1
    assert value("doorbuster_task_dead_letters_total", reason="rejected", **labels) >= 1
    assert value("doorbuster_tasks_active", queue="payments") == 0


def test_readiness_needs_a_connected_consumer():
    probe = metrics.WorkerProbe()
    assert probe.is_alive() and not probe.is_ready()
    connection = SimpleNamespace(connected=True)
    probe.worker = SimpleNamespace(consumer=SimpleNamespace(connection=connection))
    probe.ready.set()
    assert probe.is_ready()
    connection.connected = False
    assert not probe.is_ready()
    probe.stopping.set()
    assert not probe.is_alive()


def test_a_message_requeued_by_its_task_is_not_a_dead_letter():
    from celery.exceptions import Reject

    labels = {"queue": "payments", "task": "payments.refund"}
    dead = value("doorbuster_task_dead_letters_total", **labels, reason="rejected")
    requeued = value("doorbuster_tasks_total", **labels, outcome="requeued")
    task = fake_task("payments.refund")
    metrics._on_prerun("t-requeued", task)
    metrics._on_postrun("t-requeued", task, state="REJECTED", retval=Reject("x", requeue=True))
    assert value("doorbuster_tasks_total", **labels, outcome="requeued") == requeued + 1
    assert value("doorbuster_task_dead_letters_total", **labels, reason="rejected") == dead
    metrics._on_prerun("t-rejected", task)
    metrics._on_postrun("t-rejected", task, state="REJECTED", retval=Reject("x", requeue=False))
    assert value("doorbuster_task_dead_letters_total", **labels, reason="rejected") == dead + 1
