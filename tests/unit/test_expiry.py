"""The expiry sweep blames the right party: the reservation timeout counts from the
reservation, a message still in the outbox keeps its order, pending orders are never expired
(the stalled ones are reported), and beat's sweep message has no expiry to die of."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from ops import audit
from services.orders import handlers
from services.orders.tasks import payments_backlog
from shared.infra.settings import Settings
from shared.messages.orders import ExpireReservations, ReleaseReservation, SendOrderMail
from tests.unit.fakes.orders import FakeOrdersWork
from tests.unit.test_order_use_cases import placed_order, reserved, reserved_order
from workers.app import beat_app

TIMEOUT = timedelta(minutes=15)


def ago(**delta: float) -> datetime:
    return datetime.now(UTC) - timedelta(**delta)


async def test_the_sweep_cancels_orders_reserved_longer_ago_than_the_timeout_and_releases_them():
    uow = FakeOrdersWork()
    old, young = await reserved_order(uow), await reserved_order(uow)
    uow.order(old)["reserved_at"] = ago(hours=1)
    assert await handlers.expire_reservations(uow, TIMEOUT, batch=1) == 1
    assert uow.order(old)["reason"] == "reservation_expired"
    assert uow.order(young)["status"] == "reserved"
    assert uow.sent_of(ReleaseReservation) == [ReleaseReservation(order_id=old)]
    assert [m.kind for m in uow.sent_of(SendOrderMail)] == ["order_cancelled"]


async def test_the_timeout_counts_from_the_reservation_not_from_the_order():
    """An order that waited an hour for the system (a broker outage held its reserve in the
    outbox) and was reserved a minute ago has its whole timeout left to be paid."""
    uow = FakeOrdersWork()
    order_id = await reserved_order(uow)
    uow.order(order_id)["created_at"] = ago(hours=1)
    uow.order(order_id)["reserved_at"] = ago(minutes=1)
    assert await handlers.expire_reservations(uow, TIMEOUT) == 0
    assert uow.order(order_id)["status"] == "reserved" and uow.sent == []


async def test_recording_the_reservation_starts_the_expiry_clock():
    uow = FakeOrdersWork()
    order_id = await placed_order(uow)
    assert uow.order(order_id)["reserved_at"] is None
    await handlers.record_reservation(uow, reserved(order_id))
    assert ago(seconds=5) < uow.order(order_id)["reserved_at"] <= datetime.now(UTC)


async def test_a_reserved_order_whose_message_is_still_in_the_outbox_is_not_expired():
    """Its charge has not left the service (the broker is away): the system is late."""
    uow = FakeOrdersWork()
    order_id = await reserved_order(uow)
    uow.order(order_id)["reserved_at"] = ago(hours=1)
    uow.orders.unpublished.add(order_id)
    assert await handlers.expire_reservations(uow, TIMEOUT) == 0
    uow.orders.unpublished.clear()  # published: from now on the delay is the provider's
    assert await handlers.expire_reservations(uow, TIMEOUT) == 1


async def test_pending_orders_are_never_expired_and_the_stalled_ones_are_reported(caplog):
    """A pending order waits on nothing but the system: its reserve in the outbox (broker
    down), in a queue, or the inventory's answer. It is kept; one whose reserve left the
    outbox long ago is counted and named in a warning, so that someone looks."""
    uow = FakeOrdersWork()
    queued, unpublished, young = [await placed_order(uow) for _ in range(3)]
    for order_id in (queued, unpublished):
        uow.order(order_id)["created_at"] = ago(hours=2)
    uow.orders.unpublished.add(unpublished)
    uow.sent.clear()
    with caplog.at_level(logging.INFO, logger="services.orders.handlers"):
        assert await handlers.expire_reservations(uow, TIMEOUT) == 0
    assert {uow.order(o)["status"] for o in (queued, unpublished, young)} == {"pending"}
    assert uow.sent == []
    assert handlers.STALLED._value.get() == 1
    [warning] = [r for r in caplog.records if r.levelname == "WARNING"]
    assert queued in warning.getMessage() and unpublished not in warning.getMessage()
    await handlers.record_reservation(uow, reserved(queued))
    assert await handlers.report_stalled(uow, TIMEOUT) == 0
    assert handlers.STALLED._value.get() == 0


def test_the_expiry_sweep_is_published_without_a_message_expiry():
    """A sweep that waited out a pool or broker outage runs late (it is idempotent); with a
    TTL RabbitMQ dead-lettered it (reason `expired`), which `make audit` reads as a failure."""
    entry = beat_app(Settings()).conf.beat_schedule[ExpireReservations.name]
    assert entry["options"]["queue"] == "orders"
    assert "expires" not in entry["options"]


async def test_the_sweep_counts_no_payments_backlog_when_the_management_api_cannot_say():
    settings = Settings(rabbitmq_management_url="http://guest:guest@127.0.0.1:9")
    assert await payments_backlog(settings) == 0.0


def test_the_audit_explains_a_periodic_task_that_expired_in_its_queue():
    """The reconciliation keeps its one-hour expiry (and sweeps from before had 30 s): one
    that died of it lost nothing, the next run does the whole job. Anything else is not."""

    def dead_letter(task: str, reason: str) -> dict:
        return {"task": task, "x-death": [{"reason": reason, "queue": "orders"}]}

    assert audit.superseded(dead_letter("orders.reconcile_payments", "expired"))
    assert audit.superseded(dead_letter("orders.expire_reservations", "expired"))
    assert not audit.superseded(dead_letter("orders.expire_reservations", "rejected"))
    assert not audit.superseded(dead_letter("inventory.reserve", "expired"))
    assert not audit.superseded({"task": "orders.reconcile_payments"})
