"""The pools' consumer dead-letters poison messages with a reason, and refuses an oversized
body before anything decodes it."""

from types import SimpleNamespace

from celery.worker.consumer import Consumer
from kombu.exceptions import ContentDisallowed, DecodeError
from prometheus_client import REGISTRY

from shared.infra.settings import get_settings
from workers.consumer import DeadLetteringConsumer


class FakeMessage(SimpleNamespace):
    def __init__(self, body: bytes, task: str = "payments.charge"):
        super().__init__(
            body=body,
            headers={"task": task, "id": "t-1"},
            properties={},
            delivery_info={"routing_key": "payments"},
            content_type="application/json",
            rejected=None,
        )

    def reject_log_error(self, logger, errors, requeue=False):
        self.rejected = {"requeue": requeue}


def consumer() -> DeadLetteringConsumer:
    instance = DeadLetteringConsumer.__new__(DeadLetteringConsumer)
    instance.connection_errors = ()
    instance.event_dispatcher = None
    return instance


def dead_letters(reason: str, task: str = "payments.charge") -> float:
    labels = {"queue": "payments", "task": task, "reason": reason}
    return REGISTRY.get_sample_value("doorbuster_task_dead_letters_total", labels) or 0.0


def test_an_oversized_body_is_dead_lettered_before_the_handler_sees_it(monkeypatch, caplog):
    seen = []
    monkeypatch.setattr(Consumer, "create_task_handler", lambda self, *a, **k: seen.append)
    handler = consumer().create_task_handler()
    limit = get_settings().max_message_bytes
    small, big = FakeMessage(b"x" * 100), FakeMessage(b"x" * (limit + 1))
    before = dead_letters("oversized")
    handler(small)
    handler(big)
    assert seen == [small]
    assert big.rejected == {"requeue": False}
    assert dead_letters("oversized") == before + 1
    assert "poison message dead-lettered: oversized" in caplog.text
    assert "t-1" in caplog.text


def test_each_kind_of_poison_is_rejected_without_requeue_with_its_reason(caplog):
    cases = [
        (lambda c, m: c.on_decode_error(m, DecodeError("broken")), "undecodable"),
        (lambda c, m: c.on_decode_error(m, ContentDisallowed("pickle")), "content_type_refused"),
        (
            lambda c, m: c.on_invalid_task(None, m, ContentDisallowed("pickle")),
            "content_type_refused",
        ),
        (lambda c, m: c.on_unknown_task(None, m, KeyError("x")), "unknown_task"),
        (lambda c, m: c.on_unknown_message(None, m), "unknown_format"),
    ]
    for call, reason in cases:
        message = FakeMessage(b'{"secret": "eve@example.com"}')
        before = dead_letters(reason)
        call(consumer(), message)
        assert message.rejected == {"requeue": False}, reason
        assert dead_letters(reason) == before + 1, reason
        assert f"poison message dead-lettered: {reason}" in caplog.text
    assert "eve@example.com" not in caplog.text
