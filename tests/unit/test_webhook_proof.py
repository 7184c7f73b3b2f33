"""A signed payment event settles an order only when the provider's intent proves it."""

from __future__ import annotations

import pytest

from services.orders.billing import changes
from services.orders.payments import ChargeOutcome, ProviderIntent
from services.orders.webhooks import (
    CLAIMED_STATUS,
    InvalidWebhook,
    PaymentEvent,
    claimed_ids,
    disproof,
    verify,
)

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
    event = PaymentEvent("evt_1", "payment_intent.succeeded", body)
    assert None in claimed_ids(event)


def test_a_well_formed_body_names_its_intent_and_order():
    body = {"id": "pi_1", "metadata": {"order_id": "ord_1"}}
    event = PaymentEvent("evt_1", "payment_intent.succeeded", body)
    assert claimed_ids(event) == ("pi_1", "ord_1")


SECRET = "whsec_test"


def signed(body: bytes, secret: str = SECRET, at: int | None = None) -> str:
    """A `Stripe-Signature` header as Stripe computes it (t=..., v1=HMAC-SHA256)."""
    import hashlib
    import hmac
    import time

    timestamp = int(time.time()) if at is None else at
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


EVENT = (
    b'{"id": "evt_1", "type": "payment_intent.succeeded",'
    b' "data": {"object": {"id": "pi_1", "metadata": {"order_id": "ord_1"}}}}'
)


def test_a_signed_event_is_read_into_its_id_type_and_object():
    event = verify(EVENT, signed(EVENT), SECRET)
    assert (event.id, event.type) == ("evt_1", "payment_intent.succeeded")
    assert claimed_ids(event) == ("pi_1", "ord_1")


@pytest.mark.parametrize(
    "header",
    [
        None,
        "t=1,v1=deadbeef",
        signed(EVENT, secret="whsec_other"),
        signed(EVENT, at=1_000_000_000),  # signed long ago: a replay
        signed(EVENT + b" "),  # the body was changed after signing
    ],
)
def test_an_unsigned_forged_or_replayed_event_is_refused(header):
    with pytest.raises(InvalidWebhook):
        verify(EVENT, header, SECRET)


@pytest.mark.parametrize("body", [b"[1, 2]", b'{"type": "x"}', b"not json"])
def test_a_signed_body_that_is_not_an_event_is_refused(body):
    with pytest.raises(InvalidWebhook):
        verify(body, signed(body), SECRET)
