"""The order lifecycle beyond the happy path: cancel, refund, expiry, webhooks, and a payment
provider that fails for a while. Each through the real stack."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator

import stripe

from devtools.harness import emulator
from devtools.harness.shop import Shop, unique_sku, wait_status
from devtools.harness.stack import Stack
from shared.messages.inventory import StockReserved
from shared.messages.orders import ExpireReservations
from shared.messaging.publisher import Publisher
from shared.messaging.wire import OutgoingTask
from tests.support.logs import wait_task_succeeded


@contextlib.contextmanager
def payments_pool_stopped(stack: Stack) -> Iterator[None]:
    """Charges wait in their queue while the block runs; the pool then comes back."""
    stack.stop("payments-pool")
    try:
        yield
    finally:
        stack.start("payments-pool")


async def publish(stack: Stack, task: OutgoingTask) -> None:
    publisher = Publisher(stack.env["RABBITMQ_URL"])
    await publisher.connect()
    try:
        await publisher.publish(task)
    finally:
        await publisher.close()


async def settle(seconds: float = 3.0) -> None:
    """Long enough for a restarted pool to consume what waited for it."""
    await asyncio.sleep(seconds)


async def held_unpaid(
    stack: Stack, shop: Shop, order_id: str, sku: str, stock: int, reserved: int
) -> None:
    """The inventory holds the order's units and its answer waits for the stopped payments
    pool (which prices and charges the order in one task): the order is still `pending`,
    unpriced, and nothing was charged."""
    await shop.wait_stock(sku, stock=stock, reserved=reserved)
    order = await shop.order(order_id)
    assert (order["status"], order["total"], order["payment"]) == ("pending", None, None)
    assert emulator.intents_of(stack, order_id) == []


async def wait_logged(stack: Stack, process: str, task_id: str, event: str) -> None:
    """Until `process` logs `event` for the task with id `task_id`."""
    path, deadline = stack.logs / f"{process}.log", time.monotonic() + 30

    def logged() -> bool:
        lines = [line for line in path.read_text().splitlines() if task_id in line]
        records = [json.loads(line) for line in lines if line[:1] == "{"]
        return any(r.get("task_id") == task_id and r.get("event") == event for r in records)

    while not logged():
        assert time.monotonic() < deadline, f"{process}: no {event!r} for {task_id}"
        await asyncio.sleep(0.2)


# Injected provider timeouts hang this long before answering 504 (under the charge call's
# own 10 s timeout); about half of them process the request first, their answer lost.
HANG_SECONDS = 2.0


async def test_cancelling_a_reserved_order_releases_units_and_a_late_charge_charges_nothing(
    stack: Stack, shop: Shop
):
    sku = unique_sku("CANCEL")
    await shop.put_product(sku, stock=3)
    with payments_pool_stopped(stack):
        order_id = (await shop.place_order([(sku, 2)])).json()["id"]
        await held_unpaid(stack, shop, order_id, sku, stock=3, reserved=2)

        response = await shop.orders.post(
            f"/v1/orders/{order_id}/cancel", headers={"Authorization": "Bearer dev-storefront"}
        )
        assert response.status_code == 200, response.text
        assert (response.json()["status"], response.json()["reason"]) == ("cancelled", "requested")
    await settle()

    assert (await shop.order(order_id))["status"] == "cancelled"
    assert emulator.intents_of(stack, order_id) == []
    await shop.wait_stock(sku, stock=3, reserved=0)
    assert (await shop.wait_mail(order_id, "order_cancelled"))["status"] == "sent"


async def test_cancelling_a_paid_order_refunds_it_once_and_returns_the_units(
    stack: Stack, shop: Shop
):
    sku = unique_sku("REFUND")
    await shop.put_product(sku, stock=5, price=1500)
    order = await shop.wait_final((await shop.place_order([(sku, 2)])).json()["id"])
    assert order["status"] == "paid"
    await shop.wait_mail(order["id"], "order_confirmation")

    headers = {"Authorization": "Bearer dev-storefront"}
    first = await shop.orders.post(f"/v1/orders/{order['id']}/cancel", headers=headers)
    again = await shop.orders.post(f"/v1/orders/{order['id']}/cancel", headers=headers)
    assert first.status_code in (202, 409) and again.status_code in (202, 409)
    assert first.status_code == 202
    refunded = await wait_status(shop, order["id"], "refunded")

    assert refunded["payment"]["status"] == "refunded"
    refunds = emulator.refunds_of(stack, order["payment"]["intent_id"])
    assert [refund.amount for refund in refunds] == [3000]
    await shop.wait_stock(sku, stock=5, reserved=0)

    final = await shop.orders.post(f"/v1/orders/{order['id']}/cancel", headers=headers)
    assert final.status_code == 409
    assert final.headers["content-type"].startswith("application/problem+json")


async def test_reservations_that_never_finish_expire_and_their_charge_charges_nothing(
    stack: Stack, shop: Shop
):
    """The provider fails every charge for longer than the timeout (the sweep is sent with
    no timeout at all): the reserved order is expired, its units released, and the retried
    charge that reaches a healthy provider afterwards charges nothing."""
    sku = unique_sku("EXPIRE")
    await shop.put_product(sku, stock=4)
    with emulator.faults(stack, failure_rate=1.0):
        order_id = (await shop.place_order([(sku, 3)])).json()["id"]
        await wait_status(shop, order_id, "reserved")
        await shop.wait_stock(sku, stock=4, reserved=3)
        expired = await swept_until_cancelled(stack, shop, order_id)
        assert expired["reason"] == "reservation_expired"
    await shop.wait_stock(sku, stock=4, reserved=0)
    await settle()  # the charge's next retry (1 s, 2 s, ... later) finds the order cancelled

    assert emulator.intents_of(stack, order_id) == []
    assert (await shop.order(order_id))["status"] == "cancelled"


async def swept_until_cancelled(
    stack: Stack, shop: Shop, order_id: str, timeout: float = 30
) -> dict:
    """Sweeps with no timeout at all, one every few seconds as beat sends them, until the
    order is cancelled. One sweep is not always enough: each adds the payments queue's head
    wait as the management API last sampled it (every 5 s), and a sample taken while another
    test's charge sat at the head makes the sweep spare an order reserved a moment ago."""
    deadline = time.monotonic() + timeout
    while True:
        await publish(stack, OutgoingTask(ExpireReservations.name, {"older_than_seconds": 0}))
        try:
            return await wait_status(shop, order_id, "cancelled", timeout=3)
        except AssertionError:
            if time.monotonic() > deadline:
                raise


async def test_a_sweep_keeps_the_pending_orders_whose_answer_waits_in_a_queue(
    stack: Stack, shop: Shop
):
    """The payments pool (which prices and charges) is away: the order's answer waits in its
    queue, and a sweep with no timeout at all keeps the order. It is paid once the pool is
    back: the delay was the system's, not the customer's."""
    sku = unique_sku("KEPT")
    await shop.put_product(sku, stock=4)
    with payments_pool_stopped(stack):
        order_id = (await shop.place_order([(sku, 3)])).json()["id"]
        await held_unpaid(stack, shop, order_id, sku, stock=4, reserved=3)
        sweep = OutgoingTask(ExpireReservations.name, {"older_than_seconds": 0})
        await publish(stack, sweep)
        await wait_logged(stack, "orders-pool", sweep.id, "task succeeded")
        assert (await shop.order(order_id))["status"] == "pending"
    assert (await shop.wait_final(order_id))["status"] == "paid"


async def test_a_signed_webhook_reconciles_the_order_and_the_charge_task_adds_nothing(
    stack: Stack, shop: Shop
):
    sku = unique_sku("WEBHOOK")
    await shop.put_product(sku, stock=2, price=4200)
    # Every charge call hangs, then times out after the provider processed it (a timeout that
    # hides a success), and its webhook comes late. (With half of them processed, as the
    # provider's timeouts are by default, all nine tries of one run went unprocessed once:
    # the charge was dead-lettered and nothing was there to reconcile.)
    with emulator.faults(
        stack,
        timeout_rate=1.0,
        timeout_hides_rate=1.0,
        hang_seconds=HANG_SECONDS,
        faults_only_on_writes=True,
    ):
        with emulator.webhooks_held(stack):
            order_id = (await shop.place_order([(sku, 1)])).json()["id"]
            intent = await emulator.wait_succeeded_charge(stack, order_id)
            order = await shop.order(order_id)
            assert (order["status"], order["total"], order["payment"]) == ("reserved", 4200, None)
        # Only the provider's signed webhook tells the orders service: every charge call
        # still times out, so the charge task cannot be what pays the order.
        [event] = [e for e in emulator.events_of(stack, intent.id) if e.type.endswith("succeeded")]
        emulator.resend(stack, event.id)
        paid = await wait_status(shop, order_id, "paid")
        assert paid["payment"]["intent_id"] == intent.id
    # The timed-out charge is retried against a healthy provider: it finds the order paid.
    await wait_task_succeeded(stack, "payments-pool", StockReserved.name, order_id)

    assert [pi.id for pi in emulator.succeeded_charges(stack, order_id)] == [intent.id]
    assert await shop.order(order_id) == paid
    assert (await shop.wait_mail(order_id, "order_confirmation"))["status"] == "sent"


async def test_a_webhook_with_a_bad_signature_is_refused(shop: Shop):
    body = b'{"id": "evt_1", "type": "payment_intent.succeeded", "data": {"object": {}}}'
    for headers in ({}, {"Stripe-Signature": "t=1,v1=deadbeef"}):
        response = await shop.orders.post(
            "/v1/stripe/webhook",
            content=body,
            headers={"Content-Type": "application/json", **headers},
        )
        assert response.status_code == 400
        assert response.headers["content-type"].startswith("application/problem+json")


async def test_provider_errors_are_retried_with_backoff_and_charge_once(stack: Stack, shop: Shop):
    sku = unique_sku("FLAKY")
    await shop.put_product(sku, stock=2)
    with emulator.faults(stack, failure_rate=1.0):
        order_id = (await shop.place_order([(sku, 1)])).json()["id"]
        await wait_status(shop, order_id, "reserved")
        await asyncio.sleep(3)  # several failed attempts
        assert (await shop.order(order_id))["status"] == "reserved"
    started = time.monotonic()
    order = await shop.wait_final(order_id, timeout=60)
    print(f"paid {time.monotonic() - started:.1f}s after the provider recovered")
    assert order["status"] == "paid"
    assert len(emulator.succeeded_charges(stack, order_id)) == 1


async def test_timeouts_that_hide_a_success_do_not_charge_twice(stack: Stack, shop: Shop):
    sku = unique_sku("TIMEOUT")
    await shop.put_product(sku, stock=10)
    with emulator.faults(stack, timeout_rate=1.0, hang_seconds=1):
        order_ids = [(await shop.place_order([(sku, 1)])).json()["id"] for _ in range(4)]
        await asyncio.sleep(4)
    orders = await asyncio.gather(
        *(shop.wait_final(order_id, timeout=60) for order_id in order_ids)
    )
    assert {order["status"] for order in orders} == {"paid"}
    for order_id in order_ids:
        assert len(emulator.succeeded_charges(stack, order_id)) == 1


def test_stripe_sdk_sees_the_emulator_decline_as_a_card_error(stack: Stack):
    try:
        emulator.client(stack).v1.payment_intents.create(
            {
                "amount": 100,
                "currency": "usd",
                "payment_method": "pm_card_chargeDeclined",
                "confirm": True,
            }
        )
    except stripe.CardError as error:
        assert error.code == "card_declined"
    else:
        raise AssertionError("a declined card must raise CardError")
