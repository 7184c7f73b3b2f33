"""Every task kind delivered again (three more times, concurrently) changes nothing twice:
no second charge, no second mail, no stock moved twice, no status moved back."""

from __future__ import annotations

from devtools.harness.emulator import intents_of
from devtools.harness.shop import Shop, unique_sku
from devtools.harness.stack import Stack, db_fetch
from ops.maildir import count_by_header
from shared.messages.inventory import ApplyReservation, StockReserved
from shared.messages.orders import (
    ChargeOrder,
    CommitReservation,
    ReleaseReservation,
    ReserveStock,
    SendOrderMail,
)
from shared.messaging.publisher import Publisher
from shared.messaging.wire import OutgoingTask
from tests.support.broker import wait_drained

REPEATS = 3


async def republish(stack: Stack, tasks: list[OutgoingTask]) -> None:
    publisher = Publisher(stack.env["RABBITMQ_URL"])
    await publisher.connect()
    try:
        await publisher.publish_many([task for task in tasks for _ in range(REPEATS)])
    finally:
        await publisher.close()
    await wait_drained(stack.env["RABBITMQ_URL"])


async def snapshot(shop: Shop, stack: Stack, order_id: str, sku: str) -> dict:
    order = await shop.order(order_id)
    product = await shop.product(sku)
    reservation = await db_fetch(
        "inventory", "SELECT status, lines FROM reservations WHERE order_id = $1", order_id
    )
    mails = await db_fetch(
        "notifications",
        "SELECT kind, status, attempts FROM notifications WHERE order_id = $1 ORDER BY kind",
        order_id,
    )
    return {
        "order": order,
        "product": product,
        "reservation": [dict(row) for row in reservation],
        "mails": [dict(row) for row in mails],
        "charges": sorted(pi.id for pi in intents_of(stack, order_id) if pi.status == "succeeded"),
        "sink": {
            key: count
            for key, count in count_by_header(stack.maildir, "X-Doorbuster-Key").items()
            if key.startswith(order_id)
        },
    }


async def test_redelivering_every_task_of_a_paid_order_changes_nothing(stack: Stack, shop: Shop):
    sku = unique_sku("REDELIVER")
    await shop.put_product(sku, stock=5, price=2500)
    order = await shop.wait_final((await shop.place_order([(sku, 2)])).json()["id"])
    assert order["status"] == "paid"
    await shop.wait_mail(order["id"], "order_confirmation")
    await shop.wait_stock(sku, stock=3, reserved=0)
    before = await snapshot(shop, stack, order["id"], sku)

    order_id = order["id"]
    await republish(
        stack,
        [
            OutgoingTask(
                ReserveStock.name, {"order_id": order_id, "items": [{"sku": sku, "quantity": 2}]}
            ),
            OutgoingTask(
                ApplyReservation.name,
                {
                    "order_id": order_id,
                    "outcome": "reserved",
                    "lines": [{"sku": sku, "quantity": 2, "unit_price": 2500}],
                    "currency": "usd",
                },
            ),
            OutgoingTask(
                StockReserved.name,
                {
                    "order_id": order_id,
                    "lines": [{"sku": sku, "quantity": 2, "unit_price": 2500}],
                    "currency": "usd",
                },
            ),
            OutgoingTask(ChargeOrder.name, {"order_id": order_id}),
            OutgoingTask(CommitReservation.name, {"order_id": order_id}),
            OutgoingTask(ReleaseReservation.name, {"order_id": order_id}),
            OutgoingTask(
                SendOrderMail.name,
                {
                    "order_id": order_id,
                    "kind": "order_confirmation",
                    "to": "ann@example.com",
                    "total": 5000,
                    "currency": "usd",
                },
            ),
        ],
    )

    after = await snapshot(shop, stack, order_id, sku)
    assert after == before
    assert after["charges"] == [order["payment"]["intent_id"]]
    assert after["sink"] == {f"{order_id}:order_confirmation": 1}
    assert (after["product"]["stock"], after["product"]["reserved"]) == (3, 0)


async def test_redelivering_the_tasks_of_a_failed_order_changes_nothing(stack: Stack, shop: Shop):
    sku = unique_sku("REDELIVER-FAIL")
    await shop.put_product(sku, stock=4)
    response = await shop.place_order([(sku, 1)], payment_method="pm_card_chargeDeclined")
    order = await shop.wait_final(response.json()["id"])
    assert order["status"] == "payment_failed"
    await shop.wait_mail(order["id"], "payment_failed")
    await shop.wait_stock(sku, stock=4, reserved=0)
    before = await snapshot(shop, stack, order["id"], sku)

    await republish(
        stack,
        [
            OutgoingTask(
                ReserveStock.name, {"order_id": order["id"], "items": [{"sku": sku, "quantity": 1}]}
            ),
            OutgoingTask(ChargeOrder.name, {"order_id": order["id"]}),
            OutgoingTask(ReleaseReservation.name, {"order_id": order["id"]}),
        ],
    )

    after = await snapshot(shop, stack, order["id"], sku)
    assert after == before
    assert (after["product"]["stock"], after["product"]["reserved"]) == (4, 0)
