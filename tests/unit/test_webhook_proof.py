"""A signed payment event settles an order only when the provider's intent proves it."""

from __future__ import annotations

import pytest
import stripe

from services.orders.billing import changes
from services.orders.payments import ChargeOutcome, ProviderIntent
from services.orders.webhooks import CLAIMED_STATUS, claimed_ids, disproof

ORDER = {
    "id": "ord_1",
    "status": "reserved",
    "total": 4200,
    "currency": "usd",
    "payment_status": None,
    "payment_intent_id": None,
}
SUCCEEDED = CLAIMED_STATUS["payment_intent.succeeded"]
FAILED = CLAIMED_STATUS["payment_intent.payment_failed"]


def intent(**changes) -> ProviderIntent:
    values = {
        "id": "pi_1",
        "status": "succeeded",
        "amount": 4200,
        "currency": "usd",
        "order_id": "ord_1",
        "correlation_id": None,
        "error_code": None,
    }
    return ProviderIntent(**{**values, **changes})


def test_the_orders_own_intent_in_the_claimed_status_proves_the_event():
    assert disproof(ORDER, intent(), SUCCEEDED) is None
    declined = intent(status="requires_payment_method", error_code="card_declined")
    assert disproof(ORDER, declined, FAILED) is None
    assert declined.outcome() == ChargeOutcome(False, "pi_1", "card_declined")


@pytest.mark.parametrize(
    ("order", "provider", "claimed", "reason"),
    [
        ({}, None, SUCCEEDED, "unknown_intent"),
        ({}, intent(order_id="ord_2"), SUCCEEDED, "other_order"),
        ({}, intent(order_id=None), SUCCEEDED, "other_order"),
        ({"payment_intent_id": "pi_0"}, intent(), SUCCEEDED, "other_intent"),
        ({}, intent(amount=1), SUCCEEDED, "amount_mismatch"),
        ({}, intent(currency="eur"), SUCCEEDED, "amount_mismatch"),
        ({}, intent(status="requires_payment_method"), SUCCEEDED, "status_mismatch"),
        ({}, intent(status="processing"), SUCCEEDED, "status_mismatch"),
        ({}, intent(), FAILED, "status_mismatch"),
    ],
)
def test_anything_else_is_refused_with_its_reason(order, provider, claimed, reason):
    assert disproof({**ORDER, **order}, provider, claimed) == reason


def test_a_success_after_the_order_ended_without_money_is_acted_on_once():
    success = ChargeOutcome(True, "pi_1")
    for status, payment_status in (("payment_failed", "failed"), ("cancelled", None)):
        ended = {**ORDER, "status": status, "payment_status": payment_status}
        assert changes(ended, success), status
        for recorded in ("succeeded", "refund_pending", "refunded"):
            assert not changes({**ended, "payment_status": recorded}, success), recorded
    assert not changes({**ORDER, "status": "paid", "payment_status": "succeeded"}, success)
    assert not changes({**ORDER, "status": "payment_failed"}, ChargeOutcome(False, "pi_1", "x"))


@pytest.mark.parametrize(
    "body",
    [
        {"id": {"x": 1}, "metadata": {"order_id": "ord_1"}},
        {"id": "pi_1", "metadata": "ord_1"},
        {"id": "pi_1", "metadata": {"order_id": ["ord_1"]}},
        {"id": "pi_1", "metadata": {"order_id": "o" * 41}},
        {"id": "", "metadata": {"order_id": "ord_1"}},
    ],
)
def test_a_malformed_body_names_nothing_to_look_up(body):
    event = stripe.Event.construct_from(
        {"id": "evt_1", "type": "payment_intent.succeeded", "data": {"object": body}}, None
    )
    assert None in claimed_ids(event)


def test_a_well_formed_body_names_its_intent_and_order():
    body = {"id": "pi_1", "metadata": {"order_id": "ord_1"}}
    event = stripe.Event.construct_from(
        {"id": "evt_1", "type": "payment_intent.succeeded", "data": {"object": body}}, None
    )
    assert claimed_ids(event) == ("pi_1", "ord_1")
