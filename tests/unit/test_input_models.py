"""The HTTP input models are strict and bounded; task payload errors never echo values."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from services.inventory.schemas import ProductIn, Restock
from services.orders.schemas import OrderIn
from shared.infra.settings import Settings
from shared.messaging.tasks import invalid_payload_reason
from shared.messaging.topology import QueueName
from shared.web.shedding import shed_limit

ORDER = {
    "customer": {"id": "cus_1", "email": "ann@example.com"},
    "items": [{"sku": "TV-55", "quantity": 1}],
    "payment_method": "pm_card_visa",
}


def with_(path: str, value) -> dict:
    body = {**ORDER, "customer": dict(ORDER["customer"]), "items": [dict(ORDER["items"][0])]}
    target, *keys = path.split(".")
    if not keys:
        body[target] = value
    elif target == "items":
        body["items"][0][keys[-1]] = value
    else:
        body[target][keys[-1]] = value
    return body


def test_a_valid_order_passes():
    assert OrderIn.model_validate(ORDER).items[0].quantity == 1


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("items.quantity", 10**40),
        ("items.quantity", float("nan")),
        ("items.quantity", 1.0),
        ("items.quantity", "1"),
        ("items.quantity", True),
        ("items.sku", "bad sku"),
        ("customer.id", "cus\n1"),
        ("customer.id", "x" * 101),
        ("customer.email", "ann@localhost"),
        ("customer.email", "a\x00n@example.com"),
        ("payment_method", "pm card"),
        ("payment_method", "pm_" + "x" * 100),
        ("items", []),
        ("items", [{"sku": f"S{index}", "quantity": 1} for index in range(51)]),
        ("items", [{"sku": "A", "quantity": 1}, {"sku": "A", "quantity": 2}]),
        ("extra", 1),
    ],
)
def test_an_invalid_order_is_refused(path, value):
    with pytest.raises(ValidationError):
        OrderIn.model_validate(with_(path, value))


@pytest.mark.parametrize("text", ["a\x00b", "a\ud800b"])
def test_strings_postgresql_cannot_store_are_refused_anywhere(text):
    with pytest.raises(ValidationError, match="NUL or an unpaired surrogate"):
        ProductIn.model_validate({"name": text, "price": 1, "currency": "usd", "stock": 1})


@pytest.mark.parametrize("quantity", [0, -1, 10_000_001, 2**63, "5"])
def test_restock_quantities_are_bounded_integers(quantity):
    with pytest.raises(ValidationError):
        Restock.model_validate({"quantity": quantity})


def test_the_bulk_queue_sheds_first_and_checkout_last_by_default():
    settings = Settings()
    limits = {queue: shed_limit(settings, queue) for queue in QueueName}
    assert limits[QueueName.BULK] == min(limits.values())
    assert limits[QueueName.ORDERS] == max(limits.values())


def test_a_payload_error_names_fields_never_their_values():
    class Payload(BaseModel):
        order_id: str
        to: str

    with pytest.raises(ValidationError) as caught:
        Payload.model_validate({"order_id": 5, "to": None, "secret": "eve@example.com"})
    reason = invalid_payload_reason(caught.value)
    assert reason.startswith("invalid payload: order_id: Input should be a valid string")
    assert "to:" in reason and "eve@example.com" not in reason and "5" not in reason
