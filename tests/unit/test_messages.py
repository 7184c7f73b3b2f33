"""Celery protocol 2 messages built without Celery, and the one queue topology."""

import orjson
import pytest
from kombu import Queue

from shared.messaging.topology import (
    QUORUM_DELIVERY_LIMIT,
    ROUTES,
    QueueName,
    TaskName,
    dead_letter_arguments,
    dead_letter_queue,
    queue_arguments,
    task_exchange_type,
)
from shared.messaging.wire import CORRELATION_HEADER, OutgoingTask, celery_body, celery_headers
from workers.app import celery_queues, make_celery


def test_body_is_celery_json_args_kwargs_embed():
    task = OutgoingTask(TaskName.CHARGE, {"order_id": "ord_1"})
    args, kwargs, embed = orjson.loads(celery_body(task))
    assert args == [] and kwargs == {"order_id": "ord_1"}
    assert set(embed) == {"callbacks", "errbacks", "chain", "chord"}


def test_headers_name_the_task_and_hide_payload_values():
    task = OutgoingTask(TaskName.SEND_ORDER_MAIL, {"to": "ann@example.com"}, correlation_id="c1")
    headers = celery_headers(task)
    assert headers["task"] == "notifications.send_order_mail"
    assert headers["id"] == headers["root_id"] == task.id
    assert headers[CORRELATION_HEADER] == "c1"
    assert "ann@example.com" not in headers["kwargsrepr"]


@pytest.mark.parametrize(
    ("name", "queue", "priority"),
    [
        (TaskName.CHARGE, QueueName.PAYMENTS, 9),
        (TaskName.REFUND, QueueName.PAYMENTS, 8),
        (TaskName.RESERVE, QueueName.ORDERS, 7),
        (TaskName.SEND_ORDER_MAIL, QueueName.TRANSACTIONAL, 5),
        (TaskName.SEND_CAMPAIGN_BATCH, QueueName.BULK, 1),
    ],
)
def test_routes_follow_the_contract(name, queue, priority):
    task = OutgoingTask(name)
    assert (task.queue, task.priority) == (queue, priority)


def test_every_task_has_a_route():
    assert set(ROUTES) == set(TaskName)


def test_celery_declares_queues_with_the_publishers_arguments():
    for queue in celery_queues("classic"):
        assert isinstance(queue, Queue)
        expected = queue_arguments(QueueName(queue.name), "classic")
        assert queue.queue_arguments == expected
        assert expected["x-max-priority"] == 10
        assert expected["x-dead-letter-routing-key"] == dead_letter_queue(queue.name)


def test_quorum_queues_drop_max_priority():
    arguments = queue_arguments(QueueName.PAYMENTS, "quorum")
    assert arguments["x-queue-type"] == "quorum" and "x-max-priority" not in arguments


def test_quorum_queues_stop_a_crash_loop_and_dead_letter_at_least_once():
    for queue in QueueName:
        arguments = queue_arguments(queue, "quorum")
        assert arguments["x-delivery-limit"] == QUORUM_DELIVERY_LIMIT
        # At-least-once dead-lettering is only honoured with reject-publish overflow.
        assert arguments["x-dead-letter-strategy"] == "at-least-once"
        assert arguments["x-overflow"] == "reject-publish"
        assert "x-delivery-limit" not in queue_arguments(queue, "classic")


def test_dead_letter_queues_never_drop_what_is_read():
    assert dead_letter_arguments("classic") == {}
    quorum = dead_letter_arguments("quorum")
    assert quorum["x-queue-type"] == "quorum"
    assert quorum["x-delivery-limit"] > 1000 * QUORUM_DELIVERY_LIMIT


def test_the_task_exchange_is_topic_on_quorum_queues_for_celerys_delayed_delivery():
    assert task_exchange_type("classic") == "direct"
    assert task_exchange_type("quorum") == "topic"
    [queue, *_] = celery_queues("quorum")
    assert queue.exchange.type == "topic"
    assert {q.exchange.type for q in celery_queues("classic")} == {"direct"}


def test_celery_app_refuses_pickle_and_acks_late():
    conf = make_celery(None).conf
    assert conf.accept_content == ["json"]
    assert conf.task_serializer == "json"
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_acks_on_failure_or_timeout is False
    assert conf.result_expires
