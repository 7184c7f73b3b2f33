"""A charge that outlives the provider's idempotency keys, and the provider reconciliation, on
the fakes: no database, no broker, no Stripe."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.orders import billing, handlers
from services.orders.reconcile import FINDINGS, reconcile
from shared.infra.settings import Settings
from shared.messages.orders import (
    ChargeOrder,
    CommitReservation,
    ExpireReservations,
    ReconcilePayments,
    RefundOrder,
)
from tests.unit.fakes.orders import FakeOrdersWork, FakeProvider
from tests.unit.test_order_use_cases import placed_order, reserved, reserved_order
from workers.app import beat_app

SINCE = datetime(2000, 1, 1, tzinfo=UTC)


def age(uow: FakeOrdersWork, order_id: str, days: float) -> None:
    uow.order(order_id)["created_at"] = datetime.now(UTC) - timedelta(days=days)


async def test_a_young_order_is_charged_with_one_provider_call_and_no_search():
    uow, provider = FakeOrdersWork(), FakeProvider()
    order_id = await placed_order(uow)
    await billing.charge_reserved(uow, provider, reserved(order_id))
    assert uow.order(order_id)["status"] == "paid"
    assert (provider.charges, provider.searches, provider.retrievals) == (1, 0, 0)


async def test_a_charge_redriven_after_the_key_was_forgotten_reads_the_first_intent():
    uow, provider = FakeOrdersWork(), FakeProvider()
    order_id = await reserved_order(uow)
    first = provider.add(order_id, 2500)  # charged, but the outcome was never recorded
    provider.forget_keys()  # a day later the provider prunes the key
    age(uow, order_id, days=1.1)
    await billing.charge_order(uow, provider, ChargeOrder(order_id=order_id))
    order = uow.order(order_id)
    assert (order["status"], order["payment_intent_id"]) == ("paid", first.id)
    assert provider.charges == 0 and provider.searches == 1
    assert [i.id for i in provider.every] == [first.id]  # no second intent
    assert CommitReservation(order_id=order_id) in uow.sent


async def test_an_old_order_without_an_intent_is_charged_after_the_look_up():
    uow, provider = FakeOrdersWork(), FakeProvider()
    order_id = await reserved_order(uow)
    age(uow, order_id, days=2)
    await billing.charge_order(uow, provider, ChargeOrder(order_id=order_id))
    assert uow.order(order_id)["status"] == "paid"
    assert (provider.searches, provider.charges, len(provider.every)) == (1, 1, 1)


async def test_an_old_order_whose_intent_was_declined_fails_without_a_new_attempt():
    uow, provider = FakeOrdersWork(), FakeProvider()
    order_id = await reserved_order(uow)
    provider.add(order_id, 2500, status="requires_payment_method", error_code="card_declined")
    provider.forget_keys()
    age(uow, order_id, days=2)
    await billing.charge_order(uow, provider, ChargeOrder(order_id=order_id))
    order = uow.order(order_id)
    assert (order["status"], order["reason"]) == ("payment_failed", "card_declined")
    assert provider.charges == 0


async def paid_order(uow: FakeOrdersWork, provider: FakeProvider) -> str:
    order_id = await placed_order(uow)
    await billing.charge_reserved(uow, provider, reserved(order_id))
    uow.sent.clear()
    return order_id


async def test_agreeing_orders_and_intents_are_no_discrepancy():
    uow, provider = FakeOrdersWork(), FakeProvider()
    await paid_order(uow, provider)
    declined = await placed_order(uow, payment_method="pm_card_chargeDeclined")
    await billing.charge_reserved(uow, provider, reserved(declined))
    report = await reconcile(uow, provider, SINCE)
    assert report.findings == [] and (report.orders, report.intents) == (1, 2)


async def test_money_taken_for_a_reserved_order_settles_it_paid():
    uow, provider = FakeOrdersWork(), FakeProvider()
    order_id = await reserved_order(uow)
    intent = provider.add(order_id, 2500)
    dry = await reconcile(uow, provider, SINCE, fix=False)
    assert [(f.kind, f.fixed) for f in dry.findings] == [("charged_not_paid", False)]
    assert uow.order(order_id)["status"] == "reserved" and uow.sent == []  # a dry run
    report = await reconcile(uow, provider, SINCE)
    [finding] = report.findings
    assert finding.fixed and not report.remaining
    order = uow.order(order_id)
    assert (order["status"], order["payment_intent_id"]) == ("paid", intent.id)
    assert CommitReservation(order_id=order_id) in uow.sent and provider.refunds == []
    assert (await reconcile(uow, provider, SINCE)).findings == []


async def test_money_taken_for_a_cancelled_order_is_refunded_and_recorded():
    uow, provider = FakeOrdersWork(), FakeProvider()
    order_id = await reserved_order(uow)
    await handlers.cancel_order(uow, order_id)
    intent = provider.add(order_id, 2500)
    report = await reconcile(uow, provider, SINCE)
    assert [(f.kind, f.fixed) for f in report.findings] == [("charged_not_paid", True)]
    assert provider.refunds == [intent.id]
    order = uow.order(order_id)
    assert (order["status"], order["payment_status"]) == ("cancelled", "refunded")
    assert order["refund_reason"] == "paid_after_cancelled"
    assert RefundOrder(order_id=order_id) in uow.sent  # queued too; its repeat changes nothing
    assert (await reconcile(uow, provider, SINCE)).findings == []


async def test_a_second_charge_of_a_paid_order_is_refunded_and_the_first_kept():
    uow, provider = FakeOrdersWork(), FakeProvider()
    order_id = await paid_order(uow, provider)
    second = provider.add(order_id, 2500)
    report = await reconcile(uow, provider, SINCE)
    [finding] = report.findings
    assert (finding.kind, finding.fixed) == ("charged_twice", True)
    assert provider.refunds == [second.id]
    assert uow.order(order_id)["payment_intent_id"] == f"pi_{order_id}"
    assert uow.order(order_id)["status"] == "paid"
    assert (await reconcile(uow, provider, SINCE)).findings == []


async def test_a_reserved_order_charged_twice_is_settled_with_one_and_the_other_refunded():
    uow, provider = FakeOrdersWork(), FakeProvider()
    order_id = await reserved_order(uow)
    first, second = provider.add(order_id, 2500), provider.add(order_id, 2500)
    report = await reconcile(uow, provider, SINCE)
    assert [(f.kind, f.fixed) for f in report.findings] == [("charged_twice", True)]
    assert uow.order(order_id)["payment_intent_id"] == first.id
    assert provider.refunds == [second.id]


async def test_a_paid_order_without_a_succeeded_intent_stays_open_for_an_operator():
    uow, provider = FakeOrdersWork(), FakeProvider()
    order_id = await paid_order(uow, provider)
    uow.order(order_id)["payment_intent_id"] = "pi_never_succeeded"
    provider.every.clear()
    for _ in range(2):  # it stays until someone acts
        report = await reconcile(uow, provider, SINCE)
        [finding] = report.remaining
        assert finding.kind == "paid_without_charge" and "operator" in finding.done[0]
    assert provider.refunds == [] and uow.order(order_id)["status"] == "paid"


async def test_a_paid_order_whose_recorded_intent_is_wrong_records_the_one_that_holds_money():
    uow, provider = FakeOrdersWork(), FakeProvider()
    order_id = await paid_order(uow, provider)
    uow.order(order_id)["payment_intent_id"] = "pi_lost"
    report = await reconcile(uow, provider, SINCE)
    assert [(f.kind, f.fixed) for f in report.findings] == [("paid_without_charge", True)]
    assert uow.order(order_id)["payment_intent_id"] == f"pi_{order_id}"
    assert provider.refunds == []


async def test_an_intent_for_an_order_not_here_is_reported_never_refunded():
    uow, provider = FakeOrdersWork(), FakeProvider()
    provider.add("ord_elsewhere", 900)
    report = await reconcile(uow, provider, SINCE)
    assert [(f.kind, f.fixed) for f in report.remaining] == [("unknown_order", False)]
    assert provider.refunds == []


async def test_a_refunded_duplicate_is_no_longer_a_discrepancy():
    uow, provider = FakeOrdersWork(), FakeProvider()
    order_id = await paid_order(uow, provider)
    second = provider.add(order_id, 2500)
    provider.refunded[second.id] = 2500
    assert (await reconcile(uow, provider, SINCE)).findings == []


def test_beat_schedules_the_reconciliation_hourly_on_the_orders_queue_below_the_order_flow():
    schedule = beat_app(Settings()).conf.beat_schedule
    entry = schedule[ReconcilePayments.name]
    assert (entry["task"], entry["schedule"]) == ("orders.reconcile_payments", 3600.0)
    assert entry["options"]["queue"] == "orders" and entry["options"]["expires"] == 3600.0
    assert entry["options"]["priority"] < ExpireReservations.route.priority
    assert ExpireReservations.name in schedule  # the sweep is still there


async def test_each_finding_is_counted_by_kind_and_whether_it_was_fixed():
    def count(kind: str, fixed: str) -> float:
        return FINDINGS.labels(kind, fixed)._value.get()

    before = count("paid_without_charge", "false"), count("charged_twice", "true")
    uow, provider = FakeOrdersWork(), FakeProvider()
    unpaid = await paid_order(uow, provider)
    uow.order(unpaid)["payment_intent_id"] = "pi_never_succeeded"
    provider.every.clear()
    twice = await paid_order(uow, provider)
    provider.add(twice, 2500)
    await reconcile(uow, provider, SINCE)
    await reconcile(uow, provider, SINCE)  # the open one is counted again, the fixed one not
    after = count("paid_without_charge", "false"), count("charged_twice", "true")
    assert (after[0] - before[0], after[1] - before[1]) == (2, 1)
