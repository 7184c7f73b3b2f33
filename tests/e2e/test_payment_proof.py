"""Money moves only when the provider says so: a signed event is checked against the
PaymentIntent the provider holds, and a success that comes after the order ended is paid
back. Each through the real stack and the Stripe emulator."""

from __future__ import annotations

import asyncio

import orjson

from devtools.harness import emulator
from devtools.harness.metrics import sample, scrape
from devtools.harness.shop import Shop, unique_sku, wait_status
from devtools.harness.stack import Stack
from shared.messages.inventory import StockReserved
from tests.support.logs import wait_task_succeeded

PRICE = 4200
# Injected provider timeouts hang this long before answering 504 (under the charge call's
# own 10 s timeout); about half of them process the request first, their answer lost.
HANG_SECONDS = 2.0


def forged_success(intent_id: str, order_id: str, event_id: str) -> bytes:
    return orjson.dumps(
        {
            "id": event_id,
            "object": "event",
            "type": "payment_intent.succeeded",
            "data": {
                "object": {
                    "id": intent_id,
                    "object": "payment_intent",
                    "status": "succeeded",
                    "amount": PRICE,
                    "currency": "usd",
                    "metadata": {"order_id": order_id},
                }
            },
        }
    )


async def refused_count(stack: Stack, reason: str) -> float:
    samples = await asyncio.to_thread(scrape, f"{stack.url('orders')}/metrics")
    return sample(samples, "doorbuster_webhook_events_refused_total", reason=reason) or 0.0


async def wait_payment(shop: Shop, order_id: str, status: str, timeout: float = 30) -> dict:
    for _ in range(int(timeout * 10)):
        order = await shop.order(order_id)
        if order["payment"] and order["payment"]["status"] == status:
            return order
        await asyncio.sleep(0.1)
    raise AssertionError(f"order {order_id}: payment {order['payment']}, not {status}")


async def test_a_forged_success_leaves_an_order_being_charged_unpaid(stack: Stack, shop: Shop):
    sku = unique_sku("FORGED")
    await shop.put_product(sku, stock=2, price=PRICE)
    # A real, paid intent of someone else's order: a forger may name it.
    elsewhere = emulator.client(stack).v1.payment_intents.create(
        {
            "amount": PRICE,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "confirm": True,
            "metadata": {"order_id": "ord_someone_else"},
        }
    )
    before = {r: await refused_count(stack, r) for r in ("unknown_intent", "other_order")}
    with emulator.faults(stack, failure_rate=1.0, faults_only_on_writes=True):
        order_id = (await shop.place_order([(sku, 1)])).json()["id"]
        await wait_status(shop, order_id, "reserved")
        await asyncio.sleep(1.5)  # the charge is failing and being retried
        for n, intent_id in enumerate(("pi_forged_1", elsewhere.id)):
            body = forged_success(intent_id, order_id, f"evt_forged_{n}_{order_id}")
            answer = await shop.orders.post(
                "/v1/stripe/webhook", content=body, headers=emulator.signed(body)
            )
            assert answer.status_code == 200, answer.text
            assert answer.json() == {"received": True, "applied": False}
        order = await shop.order(order_id)
        assert order["status"] == "reserved" and order["payment"] is None
        # While the provider cannot be asked at all, the event is not believed either: 503,
        # and the provider delivers it again later.
        emulator.configure(stack, faults_only_on_writes=False)
        answer = await shop.orders.post(
            "/v1/stripe/webhook", content=body, headers=emulator.signed(body)
        )
        assert answer.status_code == 503
        assert (await shop.order(order_id))["status"] == "reserved"
    assert await refused_count(stack, "unknown_intent") == before["unknown_intent"] + 1
    assert await refused_count(stack, "other_order") == before["other_order"] + 1

    order = await shop.wait_final(order_id, timeout=60)
    assert order["status"] == "paid"
    [charge] = emulator.succeeded_charges(stack, order_id)
    assert order["payment"]["intent_id"] == charge.id
    assert emulator.refunds_of(stack, elsewhere.id) == []


async def test_a_success_after_payment_failed_is_refunded_once_and_says_why(
    stack: Stack, shop: Shop
):
    sku = unique_sku("LATEPAY")
    await shop.put_product(sku, stock=2, price=PRICE)
    order_id = (await shop.place_order([(sku, 1)], "pm_card_chargeDeclined")).json()["id"]
    failed = await wait_status(shop, order_id, "payment_failed")
    intent_id = failed["payment"]["intent_id"]
    # The provider really takes the money later (the customer retried the same intent).
    emulator.client(stack).v1.payment_intents.confirm(intent_id, {"payment_method": "pm_card_visa"})
    order = await wait_payment(shop, order_id, "refunded")
    assert order["status"] == "payment_failed" and order["reason"] == "card_declined"
    assert order["payment"]["refund_reason"] == "paid_after_payment_failed"
    assert len(emulator.refunds_of(stack, intent_id)) == 1

    # Duplicates, and the old failure after the success: nothing changes.
    declined, succeeded = emulator.events_of(stack, intent_id)
    assert (declined.type, succeeded.type) == (
        "payment_intent.payment_failed",
        "payment_intent.succeeded",
    )
    emulator.resend(stack, succeeded.id, times=2)
    emulator.resend(stack, declined.id, times=2)
    await asyncio.sleep(3)
    assert await shop.order(order_id) == order
    assert len(emulator.refunds_of(stack, intent_id)) == 1


async def test_a_success_after_cancel_is_refunded_and_says_why(stack: Stack, shop: Shop):
    sku = unique_sku("LATECANCEL")
    await shop.put_product(sku, stock=2, price=PRICE)
    # Every charge call hangs, then times out: the provider processes about half of them first
    # (a timeout that hides a success), and its webhook comes late.
    with (
        emulator.faults(
            stack, timeout_rate=1.0, hang_seconds=HANG_SECONDS, faults_only_on_writes=True
        ),
        emulator.webhooks_held(stack),
    ):
        order_id = (await shop.place_order([(sku, 1)])).json()["id"]
        # The charge reached the provider before the cancel (its answer was lost).
        intent = await emulator.wait_succeeded_charge(stack, order_id)
        order = await shop.order(order_id)
        assert (order["status"], order["total"], order["payment"]) == ("reserved", PRICE, None)
        cancelled = await shop.orders.post(
            f"/v1/orders/{order_id}/cancel", headers={"Authorization": "Bearer dev-storefront"}
        )
        assert cancelled.json()["status"] == "cancelled"
    [event] = [e for e in emulator.events_of(stack, intent.id) if e.type.endswith("succeeded")]
    emulator.resend(stack, event.id)
    order = await wait_payment(shop, order_id, "refunded")
    assert order["status"] == "cancelled"
    assert order["payment"] == {
        "status": "refunded",
        "intent_id": intent.id,
        "refund_reason": "paid_after_cancelled",
    }
    await shop.wait_stock(sku, stock=2, reserved=0)
    # The timed-out charge is retried against a healthy provider: it finds the order cancelled.
    await wait_task_succeeded(stack, "payments-pool", StockReserved.name, order_id)
    emulator.resend(stack, event.id, times=2)
    await asyncio.sleep(3)
    assert len(emulator.refunds_of(stack, intent.id)) == 1
    assert await shop.order(order_id) == order
