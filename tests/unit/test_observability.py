"""Sentry is on only with SENTRY_DSN, with the FastAPI/Celery integrations; the order id is a
tag and a log field; published messages carry their publish time."""

import sentry_sdk
import structlog

from shared.infra.observability import init_sentry, tag_order
from shared.infra.settings import Settings
from shared.messages.orders import ChargeOrder
from shared.messaging.publisher import _message
from shared.messaging.wire import PUBLISHED_AT_HEADER, OutgoingTask


def test_sentry_stays_off_without_a_dsn():
    assert init_sentry(Settings(sentry_dsn=None), "orders-api", []) is False


def test_sentry_starts_with_the_given_integrations():
    from sentry_sdk.integrations.celery import CeleryIntegration

    try:
        assert init_sentry(
            Settings(sentry_dsn="http://key@127.0.0.1:9/1"), "worker", [CeleryIntegration()]
        )
        client = sentry_sdk.get_client()
        assert client.is_active()
        assert "celery" in client.integrations
        assert client.options["send_default_pii"] is False
    finally:
        sentry_sdk.get_client().close()
        sentry_sdk.init()  # off again for the rest of the session


def test_the_order_id_is_a_sentry_tag_and_a_log_field():
    with sentry_sdk.isolation_scope() as scope, structlog.contextvars.bound_contextvars():
        tag_order("ord_42")
        assert scope._tags["order_id"] == "ord_42"
        assert structlog.contextvars.get_contextvars()["order_id"] == "ord_42"
        tag_order(None)
        assert scope._tags["order_id"] == "ord_42"


def test_a_published_message_carries_its_publish_time():
    message = _message(OutgoingTask(ChargeOrder.name, {"order_id": "o"}))
    assert message.timestamp is not None
    stamp = message.headers[PUBLISHED_AT_HEADER]
    assert abs(stamp - message.timestamp.timestamp()) < 1


def test_one_access_line_per_request_uvicorn_s_own_access_log_stays_off():
    import logging

    from shared.infra.observability import configure_logging

    configure_logging("test", "INFO", json=True)
    try:
        # uvicorn's HTTP protocol logs an access line whenever this is true (httptools_impl).
        assert not logging.getLogger("uvicorn.access").hasHandlers()
        assert logging.getLogger("uvicorn.error").hasHandlers()
    finally:
        logging.getLogger().handlers[:] = []
        structlog.reset_defaults()


def test_task_lines_carry_their_duration(capsys):
    import json
    import logging

    from shared.infra.observability import configure_logging

    configure_logging("test", "INFO", json=True)
    try:
        logging.getLogger("shared.messaging.tasks").info(
            "task succeeded", extra={"duration_ms": 12.5}
        )
        logging.getLogger("other").info("line", extra={"secret_field": "x"})
    finally:
        logging.getLogger().handlers[:] = []
        structlog.reset_defaults()
    first, second = (json.loads(line) for line in capsys.readouterr().err.splitlines())
    assert first["duration_ms"] == 12.5
    assert "secret_field" not in second  # only our own extras are rendered
