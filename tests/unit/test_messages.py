"""Celery protocol 2 messages built without Celery, and the one queue topology."""

from typing import ClassVar

import orjson
import pytest
from kombu import Queue
from pydantic import ValidationError

from shared.messages.inventory import ApplyReservation, StockRejected, StockReserved
from shared.messages.notifications import SendCampaignBatch
from shared.messages.orders import (
    ChargeOrder,
    OrderLine,
    RefundOrder,
    ReserveStock,
    SendOrderMail,
)
from shared.messaging.message import Message, all_messages, message_type
from shared.messaging.topology import (
    MAX_PRIORITY,
    QUORUM_DELIVERY_LIMIT,
    QueueName,
    Route,
    dead_letter_arguments,
    dead_letter_queue,
    queue_arguments,
    task_exchange_type,
)
from shared.messaging.wire import CORRELATION_HEADER, OutgoingTask, celery_body, celery_headers
from workers.app import celery_queues, make_celery


def test_body_is_celery_json_args_kwargs_embed():
    task = OutgoingTask(ChargeOrder.name, {"order_id": "ord_1"})
    args, kwargs, embed = orjson.loads(celery_body(task))
    assert args == [] and kwargs == {"order_id": "ord_1"}
    assert set(embed) == {"callbacks", "errbacks", "chain", "chord"}


def test_headers_name_the_task_and_hide_payload_values():
    task = OutgoingTask(SendOrderMail.name, {"to": "ann@example.com"}, correlation_id="c1")
    headers = celery_headers(task)
    assert headers["task"] == "notifications.send_order_mail"
    assert headers["id"] == headers["root_id"] == task.id
    assert headers[CORRELATION_HEADER] == "c1"
    assert "ann@example.com" not in headers["kwargsrepr"]


@pytest.mark.parametrize(
    ("name", "queue", "priority"),
    [
        (ChargeOrder.name, QueueName.PAYMENTS, 9),
        (RefundOrder.name, QueueName.PAYMENTS, 8),
        (ReserveStock.name, QueueName.ORDERS, 7),
        (SendOrderMail.name, QueueName.TRANSACTIONAL, 5),
        (SendCampaignBatch.name, QueueName.BULK, 1),
    ],
)
def test_routes_follow_the_contract(name, queue, priority):
    task = OutgoingTask(name)
    assert (task.queue, task.priority) == (queue, priority)


def test_every_message_is_declared_once_with_a_route_in_the_topology():
    messages = all_messages()
    names = [message.name for message in messages]
    assert len(names) == len(set(names))
    assert {"inventory.reserved", "inventory.rejected", "payments.charge"} <= set(names)
    for message in messages:
        assert message_type(message.name) is message
        assert message.route.queue in QueueName
        assert 0 <= message.route.priority < MAX_PRIORITY


def test_a_second_declaration_of_a_name_is_refused():
    with pytest.raises(TypeError, match="declared twice"):

        class Again(Message):
            name: ClassVar[str] = ChargeOrder.name
            route: ClassVar[Route] = ChargeOrder.route


def test_a_misspelt_or_missing_field_fails_at_the_sender():
    with pytest.raises(ValidationError):
        ChargeOrder(order=1)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        ReserveStock(order_id="o", items=[])  # at least one line
    with pytest.raises(ValidationError):
        StockRejected(order_id="o", reason="no_reason")  # type: ignore[arg-type]


def test_a_message_becomes_a_task_of_its_name_with_its_payload():
    task = OutgoingTask.of(
        ReserveStock(order_id="o", items=[OrderLine(sku="A", quantity=2)]), correlation_id="c"
    )
    assert (task.name, task.queue, task.priority) == ("inventory.reserve", QueueName.ORDERS, 7)
    assert task.kwargs == {"order_id": "o", "items": [{"sku": "A", "quantity": 2}]}
    assert ReserveStock.model_validate(task.kwargs).items[0].quantity == 2
    assert task.correlation_id == "c"
    # Optional fields left out are not sent (the receiver's defaults apply).
    mail = OutgoingTask.of(SendOrderMail(order_id="o", kind="order_rejected", to="a@b.c"))
    assert set(mail.kwargs) == {"order_id", "kind", "to"}


def test_the_deprecated_answer_is_read_as_the_inventorys_events():
    line = {"sku": "A", "quantity": 1, "unit_price": 500}
    reserved = ApplyReservation(order_id="o", outcome="reserved", lines=[line], currency="usd")
    assert reserved.as_event() == StockReserved(order_id="o", lines=[line], currency="usd")
    rejected = ApplyReservation(order_id="o", outcome="rejected", reason="unknown_sku")
    assert rejected.as_event() == StockRejected(order_id="o", reason="unknown_sku")
    assert ApplyReservation.deprecated and not StockReserved.deprecated


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
