"""The order state machine: only the contract's transitions, final statuses stay final."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.orders.domain import (
    FINAL,
    IllegalTransition,
    OrderStatus,
    fingerprint,
    key_scope,
    transition,
)

LEGAL = {
    ("pending", "reserved"),
    ("pending", "rejected"),
    ("pending", "cancelled"),
    ("reserved", "paid"),
    ("reserved", "payment_failed"),
    ("reserved", "cancelled"),
    ("paid", "refunded"),
}


@given(st.sampled_from(list(OrderStatus)), st.sampled_from(list(OrderStatus)))
def test_only_contract_transitions_are_allowed(current, target):
    if (current.value, target.value) in LEGAL:
        assert transition("ord_1", current, target) is target
    else:
        with pytest.raises(IllegalTransition):
            transition("ord_1", current, target)


@given(st.sampled_from(sorted(FINAL - {OrderStatus.PAID})), st.sampled_from(list(OrderStatus)))
def test_final_statuses_other_than_paid_never_move(final, target):
    with pytest.raises(IllegalTransition):
        transition("ord_1", final, target)


@given(st.lists(st.sampled_from(list(OrderStatus)), max_size=12))
def test_any_walk_of_legal_moves_reaches_a_final_status_at_most_once(targets):
    status, finals_reached = OrderStatus.PENDING, 0
    for target in targets:
        try:
            status = transition("ord_1", status, target)
        except IllegalTransition:
            continue
        finals_reached += status in FINAL
    assert finals_reached <= 2  # paid, then at most refunded


def test_fingerprint_ignores_key_order_but_not_values():
    a = {"items": [{"sku": "A", "quantity": 1}], "payment_method": "pm_card_visa"}
    b = {"payment_method": "pm_card_visa", "items": [{"quantity": 1, "sku": "A"}]}
    c = {"payment_method": "pm_card_visa", "items": [{"quantity": 2, "sku": "A"}]}
    assert fingerprint(a) == fingerprint(b)
    assert fingerprint(a) != fingerprint(c)


def test_idempotency_scope_hides_the_key():
    scope = key_scope("dev-storefront")
    assert "dev-storefront" not in scope
    assert scope == key_scope("dev-storefront") != key_scope("other")
