"""The orders service's use cases on a fake unit of work: no database, no broker, no Stripe.

Each test says what a use case writes and which messages it sends (only on commit)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from services.orders import billing, handlers, webhooks
from services.orders.domain import IllegalTransition, key_scope
from services.orders.payments import TransientPaymentError
from shared.messages.inventory import PricedLine, StockRejected, StockReserved
from shared.messages.orders import (
    ChargeOrder,
    CommitReservation,
    RefundOrder,
    ReleaseReservation,
    ReserveStock,
    ReturnUnits,
    SendOrderMail,
)
from tests.unit.fakes.orders import FakeOrdersWork, FakeProvider

BODY = {
    "customer": {"id": "cus_1", "email": "ann@example.com"},
    "items": [{"sku": "SKU-1", "quantity": 2}],
    "payment_method": "pm_card_visa",
}


def place(key: str = "key-1", body: dict | None = None) -> handlers.PlaceOrder:
    return handlers.PlaceOrder("storefront-key", key, body or BODY)


async def placed_order(uow: FakeOrdersWork, **body) -> str:
    placed = await handlers.place_order(uow, place(f"key-{uuid.uuid4()}", {**BODY, **body}))
    return placed.order["id"]


def reserved(order_id: str) -> StockReserved:
    line = PricedLine(sku="SKU-1", quantity=2, unit_price=1250)
    return StockReserved(order_id=order_id, lines=[line], currency="usd")


async def reserved_order(uow: FakeOrdersWork, **body) -> str:
    order_id = await placed_order(uow, **body)
    assert await handlers.record_reservation(uow, reserved(order_id))
    uow.sent.clear()
    return order_id


async def test_placing_an_order_writes_it_pending_and_sends_the_reserve_command():
    uow = FakeOrdersWork()
    placed = await handlers.place_order(uow, place())
    assert not placed.replayed and placed.order["status"] == "pending"
    [reserve] = uow.sent
    assert reserve == ReserveStock(order_id=placed.order["id"], items=BODY["items"])
    assert uow.order(placed.order["id"])["items"][0]["unit_price"] is None


async def test_the_same_key_and_body_replay_the_order_and_send_nothing_more():
    uow = FakeOrdersWork()
    first = await handlers.place_order(uow, place())
    again = await handlers.place_order(uow, place())
    assert again.replayed and again.order["id"] == first.order["id"]
    assert len(uow.orders.rows) == 1 and len(uow.sent) == 1


async def test_the_same_key_with_another_body_is_refused():
    uow = FakeOrdersWork()
    await handlers.place_order(uow, place())
    other = {**BODY, "payment_method": "pm_card_chargeDeclined"}
    with pytest.raises(handlers.IdempotencyKeyReused):
        await handlers.place_order(uow, place(body=other))
    assert len(uow.orders.rows) == 1 and len(uow.sent) == 1


async def test_a_key_in_flight_is_refused_and_nothing_is_written():
    uow = FakeOrdersWork()
    uow.orders.keys_in_flight.add((key_scope("storefront-key"), "key-1"))
    with pytest.raises(handlers.IdempotencyKeyInFlight):
        await handlers.place_order(uow, place())
    assert uow.orders.rows == {} and uow.sent == []


async def test_a_reservation_prices_the_order_and_charges_it_in_the_same_step():
    uow, provider = FakeOrdersWork(), FakeProvider()
    order_id = await placed_order(uow)
    uow.sent.clear()
    await billing.charge_reserved(uow, provider, reserved(order_id))
    order = uow.order(order_id)
    assert (order["status"], order["total"], order["currency"]) == ("paid", 2500, "usd")
    assert provider.intents[order_id].amount == 2500
    # No charge message: the answer is handled where the charge runs.
    assert [type(m) for m in uow.sent] == [CommitReservation, SendOrderMail]


async def test_an_answer_redelivered_after_it_was_recorded_still_charges_once():
    uow, provider = FakeOrdersWork(), FakeProvider()
    order_id = await placed_order(uow)
    assert await handlers.record_reservation(uow, reserved(order_id))  # then the worker died
    await billing.charge_reserved(uow, provider, reserved(order_id))
    await billing.charge_reserved(uow, provider, reserved(order_id))
    assert uow.order(order_id)["status"] == "paid" and provider.charges == 1
    assert len(uow.sent_of(CommitReservation)) == 1


async def test_the_deprecated_answer_records_and_queues_the_charge_as_before():
    uow = FakeOrdersWork()
    order_id = await placed_order(uow)
    uow.sent.clear()
    order = await handlers.record_reservation(uow, reserved(order_id))
    await handlers.request_charge(uow, order)
    assert uow.order(order_id)["status"] == "reserved"
    assert uow.sent == [ChargeOrder(order_id=order_id)]


async def test_a_rejection_rejects_the_order_and_mails_the_customer():
    uow = FakeOrdersWork()
    order_id = await placed_order(uow)
    uow.sent.clear()
    await handlers.stock_rejected(uow, StockRejected(order_id=order_id, reason="out_of_stock"))
    assert uow.order(order_id)["status"] == "rejected"
    [mail] = uow.sent
    assert (mail.kind, mail.reason) == ("order_rejected", "out_of_stock")
    assert mail.to == BODY["customer"]["email"]


async def test_a_repeated_answer_changes_nothing_and_sends_nothing():
    uow = FakeOrdersWork()
    order_id = await reserved_order(uow)
    assert await handlers.record_reservation(uow, reserved(order_id))  # reserved: charge it
    await handlers.stock_rejected(uow, StockRejected(order_id=order_id, reason="out_of_stock"))
    assert uow.order(order_id)["status"] == "reserved" and uow.sent == []


async def test_units_reserved_for_an_order_cancelled_meanwhile_are_released():
    uow = FakeOrdersWork()
    order_id = await placed_order(uow)
    await handlers.cancel_order(uow, order_id)
    uow.sent.clear()
    assert await handlers.record_reservation(uow, reserved(order_id)) is None
    assert uow.order(order_id)["status"] == "cancelled"
    assert uow.sent == [ReleaseReservation(order_id=order_id)]


async def test_a_charge_pays_the_order_commits_its_units_and_confirms_by_mail():
    uow, provider = FakeOrdersWork(), FakeProvider()
    order_id = await reserved_order(uow)
    await billing.charge_order(uow, provider, ChargeOrder(order_id=order_id))
    order = uow.order(order_id)
    assert (order["status"], order["payment_status"]) == ("paid", "succeeded")
    assert order["payment_intent_id"] == f"pi_{order_id}"
    commit, mail = uow.sent
    assert commit == CommitReservation(order_id=order_id)
    assert isinstance(mail, SendOrderMail)
    assert (mail.kind, mail.total) == ("order_confirmation", 2500)


async def test_a_declined_card_fails_the_payment_and_releases_the_units():
    uow, provider = FakeOrdersWork(), FakeProvider()
    order_id = await reserved_order(uow, payment_method="pm_card_chargeDeclined")
    await billing.charge_order(uow, provider, ChargeOrder(order_id=order_id))
    order = uow.order(order_id)
    assert (order["status"], order["reason"]) == ("payment_failed", "card_declined")
    release, mail = uow.sent
    assert release == ReleaseReservation(order_id=order_id)
    assert (mail.kind, mail.reason) == ("payment_failed", "card_declined")


async def test_a_redelivered_charge_neither_calls_the_provider_nor_sends_again():
    uow, provider = FakeOrdersWork(), FakeProvider()
    order_id = await reserved_order(uow)
    await billing.charge_order(uow, provider, ChargeOrder(order_id=order_id))
    await billing.charge_order(uow, provider, ChargeOrder(order_id=order_id))
    assert provider.charges == 1 and len(uow.sent) == 2


async def test_a_provider_outage_writes_nothing_and_raises_for_the_retry_policy():
    uow, provider = FakeOrdersWork(), FakeProvider()
    order_id = await reserved_order(uow)
    provider.failure = TransientPaymentError("stripe is away")
    with pytest.raises(TransientPaymentError):
        await billing.charge_order(uow, provider, ChargeOrder(order_id=order_id))
    assert uow.order(order_id)["status"] == "reserved" and uow.sent == []


def payment_event(kind: str, intent_id: str, order_id: str) -> webhooks.PaymentEvent:
    """What `webhooks.verify` returns for a signed event (signing: test_webhook_proof)."""
    claimed = {"id": intent_id, "object": "payment_intent", "metadata": {"order_id": order_id}}
    return webhooks.PaymentEvent("evt_1", kind, claimed)


async def test_a_webhook_that_arrives_first_settles_the_charge_once():
    uow, provider = FakeOrdersWork(), FakeProvider()
    order_id = await reserved_order(uow)
    # The charge reached the provider, then the worker died before recording it.
    await provider.charge(order_id, 2500, "usd", "pm_card_visa")
    event = payment_event("payment_intent.succeeded", f"pi_{order_id}", order_id)
    assert await webhooks.reconcile(uow, provider, event)
    assert uow.order(order_id)["status"] == "paid"
    # The redelivered charge task and a repeated event find the outcome recorded.
    await billing.charge_order(uow, provider, ChargeOrder(order_id=order_id))
    assert await webhooks.reconcile(uow, provider, event)
    assert [type(m) for m in uow.sent] == [CommitReservation, SendOrderMail]


async def test_a_webhook_after_the_charge_task_changes_nothing_and_asks_no_provider():
    uow, provider = FakeOrdersWork(), FakeProvider()
    order_id = await reserved_order(uow)
    await billing.charge_order(uow, provider, ChargeOrder(order_id=order_id))
    sent = list(uow.sent)
    event = payment_event("payment_intent.succeeded", f"pi_{order_id}", order_id)
    assert await webhooks.reconcile(uow, provider, event)
    assert provider.retrievals == 0 and uow.sent == sent
    # A claim that contradicts the record is checked with the provider, and refused.
    failed = payment_event("payment_intent.payment_failed", f"pi_{order_id}", order_id)
    assert not await webhooks.reconcile(uow, provider, failed)
    assert provider.retrievals == 1 and uow.order(order_id)["status"] == "paid"


async def test_a_webhook_during_the_charge_waits_for_the_task_and_asks_no_provider():
    uow, provider = FakeOrdersWork(), FakeProvider()
    order_id = await reserved_order(uow)
    event = payment_event("payment_intent.succeeded", f"pi_{order_id}", order_id)

    async def charge_task_records_soon() -> None:
        await asyncio.sleep(0.01)
        await billing.charge_order(uow, provider, ChargeOrder(order_id=order_id))

    applied, _ = await asyncio.gather(
        webhooks.reconcile(uow, provider, event, grace=0.2), charge_task_records_soon()
    )
    assert applied and provider.retrievals == 0
    assert uow.order(order_id)["status"] == "paid"
    assert [type(m) for m in uow.sent] == [CommitReservation, SendOrderMail]


async def test_a_webhook_whose_charge_task_never_records_is_proven_after_the_grace():
    uow, provider = FakeOrdersWork(), FakeProvider()
    order_id = await reserved_order(uow)
    # The charge reached the provider, then the worker died before recording it.
    await provider.charge(order_id, 2500, "usd", "pm_card_visa")
    event = payment_event("payment_intent.succeeded", f"pi_{order_id}", order_id)
    assert await webhooks.reconcile(uow, provider, event, grace=0.01)
    assert provider.retrievals == 1 and uow.order(order_id)["status"] == "paid"
    assert [type(m) for m in uow.sent] == [CommitReservation, SendOrderMail]


async def test_a_webhook_the_provider_does_not_confirm_changes_nothing():
    uow, provider = FakeOrdersWork(), FakeProvider()
    order_id = await reserved_order(uow)
    forged = payment_event("payment_intent.succeeded", "pi_forged", order_id)
    assert not await webhooks.reconcile(uow, provider, forged)
    assert uow.order(order_id)["status"] == "reserved" and uow.sent == []


async def test_money_taken_for_a_cancelled_order_is_refunded():
    uow, provider = FakeOrdersWork(), FakeProvider()
    order_id = await reserved_order(uow)
    await handlers.cancel_order(uow, order_id)
    uow.sent.clear()
    outcome = await provider.charge(order_id, 2500, "usd", "pm_card_visa")
    await billing.settle_charge(uow, order_id, outcome)
    order = uow.order(order_id)
    assert (order["status"], order["refund_reason"]) == ("cancelled", "paid_after_cancelled")
    assert uow.sent == [RefundOrder(order_id=order_id)]


async def test_a_refund_returns_the_units_and_tells_the_customer():
    uow, provider = FakeOrdersWork(), FakeProvider()
    order_id = await reserved_order(uow)
    await billing.charge_order(uow, provider, ChargeOrder(order_id=order_id))
    await handlers.cancel_order(uow, order_id)  # paid: refund_pending, refund sent
    assert uow.sent[-1] == RefundOrder(order_id=order_id)
    uow.sent.clear()
    await billing.refund_order(uow, provider, RefundOrder(order_id=order_id))
    await billing.refund_order(uow, provider, RefundOrder(order_id=order_id))
    assert uow.order(order_id)["status"] == "refunded" and provider.refunds == [f"pi_{order_id}"]
    returned, mail = uow.sent
    assert returned == ReturnUnits(order_id=order_id) and mail.reason == "refunded"


async def test_a_final_order_cannot_be_cancelled():
    uow = FakeOrdersWork()
    order_id = await placed_order(uow)
    await handlers.stock_rejected(uow, StockRejected(order_id=order_id, reason="unknown_sku"))
    with pytest.raises(handlers.OrderIsFinal):
        await handlers.cancel_order(uow, order_id)


async def test_an_illegal_transition_rolls_the_unit_back():
    uow = FakeOrdersWork()
    order_id = await placed_order(uow)
    uow.sent.clear()

    async def pay_a_pending_order() -> None:
        async with uow:
            order = await uow.orders.get(order_id, lock=True)
            uow.emit(CommitReservation(order_id=order_id))
            await uow.orders.set_status(order, order["status"], check=False, total=1)
            await uow.orders.set_status(order, "paid")
            await uow.commit()

    with pytest.raises(IllegalTransition):
        await pay_a_pending_order()
    assert uow.order(order_id)["total"] is None and uow.sent == []
