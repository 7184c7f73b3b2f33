"""One order from the storefront API to a paid charge and a sent mail, through the real
services, pools, broker, databases, Stripe emulator and SMTP sink."""

from __future__ import annotations

import asyncio
import time
import uuid

from devtools.harness.emulator import intents_of
from devtools.harness.shop import Shop, unique_sku
from devtools.harness.stack import Stack
from ops.maildir import count_by_header


async def test_an_order_is_paid_charged_once_and_confirmed_by_mail(stack: Stack, shop: Shop):
    sku = unique_sku("TV")
    await shop.put_product(sku, stock=10, price=49900)

    started = time.perf_counter()
    response = await shop.place_order([(sku, 2)])
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["status"] == "pending"
    assert accepted["total"] is None and accepted["items"][0]["unit_price"] is None
    assert response.headers["location"] == f"/v1/orders/{accepted['id']}"

    order = await shop.wait_final(accepted["id"])
    elapsed = time.perf_counter() - started
    print(f"POST -> paid in {elapsed * 1000:.0f} ms")

    assert order["status"] == "paid"
    assert order["total"] == 2 * 49900 and order["currency"] == "usd"
    assert order["items"] == [{"sku": sku, "quantity": 2, "unit_price": 49900}]
    assert order["payment"]["status"] == "succeeded"

    intents = intents_of(stack, order["id"])
    assert [pi.id for pi in intents] == [order["payment"]["intent_id"]]
    assert intents[0].status == "succeeded" and intents[0].amount == 2 * 49900

    mail = await shop.wait_mail(order["id"], "order_confirmation")
    assert mail["status"] == "sent" and mail["to"] == "ann@example.com"
    assert (
        count_by_header(stack.maildir, "X-Doorbuster-Key")[f"{order['id']}:order_confirmation"] == 1
    )

    await shop.wait_stock(sku, stock=8, reserved=0)
    assert (await shop.product(sku))["available"] == 8


async def test_a_declined_card_ends_payment_failed_and_releases_the_units(stack: Stack, shop: Shop):
    sku = unique_sku("DECLINE")
    await shop.put_product(sku, stock=3)

    response = await shop.place_order([(sku, 2)], payment_method="pm_card_visa_chargeDeclined")
    order = await shop.wait_final(response.json()["id"])

    assert order["status"] == "payment_failed"
    assert order["reason"] == "card_declined"
    assert order["payment"]["status"] == "failed"
    await shop.wait_stock(sku, stock=3, reserved=0)
    assert (await shop.wait_mail(order["id"], "payment_failed"))["status"] == "sent"
    assert not [pi for pi in intents_of(stack, order["id"]) if pi.status == "succeeded"]


async def test_out_of_stock_ends_rejected_without_a_charge(stack: Stack, shop: Shop):
    sku = unique_sku("SCARCE")
    await shop.put_product(sku, stock=1)

    response = await shop.place_order([(sku, 2)])
    order = await shop.wait_final(response.json()["id"])

    assert (order["status"], order["reason"]) == ("rejected", "out_of_stock")
    assert order["payment"] is None
    assert intents_of(stack, order["id"]) == []
    product = await shop.product(sku)
    assert (product["stock"], product["reserved"]) == (1, 0)
    assert (await shop.wait_mail(order["id"], "order_rejected"))["status"] == "sent"


async def test_a_multi_item_order_reserves_all_or_nothing(shop: Shop):
    plenty, scarce = unique_sku("PLENTY"), unique_sku("SCARCE")
    await shop.put_product(plenty, stock=5)
    await shop.put_product(scarce, stock=0)

    response = await shop.place_order([(plenty, 1), (scarce, 1)])
    order = await shop.wait_final(response.json()["id"])

    assert (order["status"], order["reason"]) == ("rejected", "out_of_stock")
    assert (await shop.product(plenty))["reserved"] == 0
    assert (await shop.product(plenty))["stock"] == 5


async def test_an_unknown_sku_ends_rejected_unknown_sku(shop: Shop):
    response = await shop.place_order([(unique_sku("NOPE"), 1)])
    order = await shop.wait_final(response.json()["id"])
    assert (order["status"], order["reason"]) == ("rejected", "unknown_sku")


async def test_the_same_idempotency_key_and_body_return_the_same_order(shop: Shop):
    sku = unique_sku("IDEM")
    await shop.put_product(sku, stock=5)

    first = await shop.place_order([(sku, 1)], key="idem-key-1")
    again = await shop.place_order([(sku, 1)], key="idem-key-1")
    other = await shop.place_order([(sku, 2)], key="idem-key-1")

    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    assert again.headers.get("idempotent-replayed") == "true"
    assert other.status_code == 422
    assert other.headers["content-type"].startswith("application/problem+json")
    await shop.wait_final(first.json()["id"])
    # The units leave stock when its commit runs (gathered with others' for up to 0.25 s).
    await shop.wait_stock(sku, stock=4, reserved=0)


async def test_concurrent_requests_with_one_key_place_one_order(shop: Shop):
    sku = unique_sku("IDEM")
    await shop.put_product(sku, stock=50)
    key = uuid.uuid4().hex

    responses = await asyncio.gather(*(shop.place_order([(sku, 1)], key=key) for _ in range(20)))

    accepted = [r for r in responses if r.status_code == 202]
    in_flight = [r for r in responses if r.status_code == 409]
    assert len(accepted) + len(in_flight) == 20, [r.status_code for r in responses]
    assert len({r.json()["id"] for r in accepted}) == 1
    assert sum(r.headers.get("idempotent-replayed") != "true" for r in accepted) == 1
    for refused in in_flight:
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert refused.json()["type"].endswith("idempotency-key-in-flight")
        assert refused.headers["retry-after"] == "1"
    await shop.wait_final(accepted[0].json()["id"])
    await shop.wait_stock(sku, stock=49, reserved=0)


async def test_a_missing_idempotency_key_is_refused_and_changes_nothing(shop: Shop):
    response = await shop.orders.post(
        "/v1/orders",
        json={
            "customer": {"id": "c", "email": "a@example.com"},
            "items": [{"sku": "X", "quantity": 1}],
            "payment_method": "pm_card_visa",
        },
        headers={"Authorization": "Bearer dev-storefront"},
    )
    assert response.status_code == 400
    problem = response.json()
    assert problem["type"].endswith("idempotency-key-required")
    assert {"type", "title", "status", "detail"} <= problem.keys()
