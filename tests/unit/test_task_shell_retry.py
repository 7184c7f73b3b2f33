"""The shell's retry: its publish is bounded, and a publish that fails requeues the message
instead of dead-lettering it (Celery's `Reject(requeue=False)`)."""

from unittest import mock

import pytest
from celery import Celery
from celery.exceptions import Reject, Retry
from kombu.exceptions import OperationalError

from shared.messaging.tasks import RETRY_CONFIRM_TIMEOUT, ShellTask


@pytest.fixture
def flaky():
    app = Celery("t", broker="memory://", set_as_current=False)

    @app.task(bind=True, base=ShellTask, name="t.flaky")
    def flaky(self):
        raise self.retry(countdown=1)

    return flaky


def test_a_retry_that_cannot_be_published_requeues(flaky):
    with mock.patch("celery.canvas.Signature.apply_async") as publish:
        publish.side_effect = OperationalError("timed out")
        flaky.push_request(id="r1", called_directly=False, delivery_info={})
        try:
            with pytest.raises(Reject) as rejected:
                flaky.retry(countdown=1)
        finally:
            flaky.pop_request()
    assert rejected.value.requeue is True
    assert isinstance(rejected.value.reason, OperationalError)


def test_a_retry_waits_a_bounded_time_for_its_confirm(flaky):
    signatures = []
    with mock.patch("celery.app.task.Task.signature_from_request") as make:
        make.side_effect = lambda *a, **options: signatures.append(options) or mock.Mock()
        flaky.push_request(id="r2", called_directly=False, delivery_info={})
        try:
            with pytest.raises(Retry):
                flaky.retry(countdown=1)
        finally:
            flaky.pop_request()
    assert signatures[0]["confirm_timeout"] == RETRY_CONFIRM_TIMEOUT
    assert signatures[0]["retry"] is False


def test_a_redelivered_task_is_dead_lettered_once_it_ran_the_limit(monkeypatch, tmp_path):
    from types import SimpleNamespace

    from shared.messaging import tasks

    settings = SimpleNamespace(task_delivery_limit=3, delivery_counts_dir=str(tmp_path))
    monkeypatch.setattr(tasks, "get_settings", lambda: settings)
    task = SimpleNamespace(
        name="t.crash",
        app=SimpleNamespace(main="doorbuster-t"),
        request=SimpleNamespace(id="crash-1", delivery_info={"redelivered": True}),
    )
    assert tasks._redelivered(task)
    tasks._count_run(task)  # the 2nd delivery runs
    tasks._count_run(task)  # the 3rd runs: 3 runs in all, the limit
    with pytest.raises(Reject) as rejected:
        tasks._count_run(task)  # the 4th is dead-lettered
    assert rejected.value.requeue is False
    assert str(rejected.value.reason).startswith("delivery_limit: delivered 4 times")
