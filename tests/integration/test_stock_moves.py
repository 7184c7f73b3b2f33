"""Stock moves on a real PostgreSQL: `inventory.commit`, `.release` and `.return` in every
order of arrival, delivered more than once, and racing each other, each one statement; the
audit's ledger (check 3) green on what they leave and red on stock that does not add up; the
migration that opens the ledger balanced on existing rows."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from itertools import permutations

import asyncpg
import pytest
from alembic import command

from devtools.harness.stack import DB_PREFIX, PG_SERVER, drop_databases
from ops.audit import stock_consistent
from ops.stock import STOCK_LEDGER, sku_violations
from services.inventory import handlers
from services.inventory.db import outbox
from services.inventory.repository import InventoryUnitOfWork
from services.inventory.schemas import ProductIn
from shared.infra.db import Database, create_database_if_missing
from shared.infra.migrate import alembic_config, migrate
from shared.infra.settings import Settings
from shared.messages.orders import (
    CommitReservation,
    CommitReservations,
    OrderLine,
    ReleaseReservation,
    ReserveStock,
    ReturnUnits,
)
from shared.messaging.outbox import Dispatcher, Outbox
from shared.messaging.publisher import Publisher

BASE = f"{DB_PREFIX}_stock"
SETTINGS = Settings(database_url=f"postgresql+asyncpg://postgres@127.0.0.1:5432/{BASE}")
FATES = {"paid": ("commit",), "refunded": ("commit", "return"), "unpaid": ("release",)}
ENDS = {"paid": (-1, "committed"), "refunded": (0, "returned"), "unpaid": (0, "released")}
MESSAGES = {"commit": CommitReservation, "release": ReleaseReservation, "return": ReturnUnits}
SETTLE = {
    "commit": handlers.commit_reservation,
    "release": handlers.release_reservation,
    "return": handlers.return_units,
}


DATABASES = (f"{BASE}_inventory", f"{BASE}_orders")


def migrate_inventory_with_old_rows() -> None:
    """Up to 0002 (before the ledger), rows an older version left, then to the newest."""
    url = SETTINGS.service_database_url("inventory")
    migrate("orders", SETTINGS)
    asyncio.run(create_database_if_missing(url))
    command.upgrade(alembic_config("inventory", url), "0002")
    asyncio.run(_old_rows())
    command.upgrade(alembic_config("inventory", url), "head")


async def _old_rows() -> None:
    connection = await asyncpg.connect(f"{PG_SERVER}/{BASE}_inventory")
    try:
        await connection.execute(
            "INSERT INTO products (sku, name, price, currency, stock, reserved) VALUES "
            "('OLD', 'old', 100, 'usd', 7, 1);"
            "INSERT INTO reservations (order_id, status, lines) VALUES "
            """('old-1', 'committed', '[{"sku": "OLD", "quantity": 2}]'),"""
            """('old-2', 'returned', '[{"sku": "OLD", "quantity": 3}]'),"""
            """('old-3', 'reserved', '[{"sku": "OLD", "quantity": 1}]')"""
        )
    finally:
        await connection.close()


@pytest.fixture(scope="module")
async def db() -> AsyncIterator[Database]:
    await drop_databases(*DATABASES)
    await asyncio.to_thread(migrate_inventory_with_old_rows)
    database = Database(SETTINGS.service_database_url("inventory"), pool_size=8)
    yield database
    await database.dispose()
    await drop_databases(*DATABASES)


def unit_of_work(db: Database) -> InventoryUnitOfWork:
    publisher = Publisher("amqp://guest:guest@127.0.0.1:5672/%2F")  # never connected here
    return InventoryUnitOfWork(db, Outbox(outbox), Dispatcher(Outbox(outbox), db, publisher))


async def ledger(sku: str | None = None) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(f"{PG_SERVER}/{BASE}_inventory")
    try:
        rows = await connection.fetch(STOCK_LEDGER)
    finally:
        await connection.close()
    return [row for row in rows if sku is None or row["sku"] == sku]


async def new_product(db: Database, stock: int) -> str:
    sku = f"S-{uuid.uuid4().hex[:10]}"
    product = ProductIn(name=sku, price=500, currency="usd", stock=stock)
    await handlers.put_product(unit_of_work(db), sku, product)
    return sku


async def reserve(db: Database, order_id: str, sku: str, quantity: int) -> None:
    command_ = ReserveStock(order_id=order_id, items=[OrderLine(sku=sku, quantity=quantity)])
    await handlers.reserve_stock(unit_of_work(db), command_)


async def deliver(db: Database, kind: str, order_id: str) -> None:
    await SETTLE[kind](unit_of_work(db), MESSAGES[kind](order_id=order_id))


async def test_the_migration_opens_the_ledger_balanced_on_old_rows(db: Database):
    [row] = await ledger("OLD")
    assert (row["stock"], row["received"], row["sold"], row["returned"]) == (7, 9, 5, 3)
    assert sku_violations(row) == []


ARRIVALS = sorted(
    {
        (fate, arrival)
        for fate, messages in FATES.items()
        for copies in (1, 2)
        for arrival in permutations(messages * copies)
    }
)


@pytest.mark.parametrize(("fate", "arrival"), ARRIVALS)
async def test_every_arrival_order_and_duplicates_on_the_real_database(db, fate, arrival):
    sku = await new_product(db, stock=10)
    order_id = f"ord-{uuid.uuid4().hex[:12]}"
    await reserve(db, order_id, sku, 3)
    for kind in arrival:
        await deliver(db, kind, order_id)
        [row] = await ledger(sku)
        assert sku_violations(row) == [], (arrival, kind)
    [row] = await ledger(sku)
    moved, _ = ENDS[fate]
    assert (row["stock"], row["reserved"]) == (10 + 3 * moved, 0)
    status = await db.fetch_alone("SELECT status FROM reservations WHERE order_id = $1", order_id)
    assert status[0]["status"] == ENDS[fate][1]


async def test_racing_commits_returns_and_their_duplicates_add_up(db: Database):
    """Each refunded order's commit and return, twice each, all sent at once on separate
    connections: every return counts whether it meets its order reserved or committed."""
    sku = await new_product(db, stock=100)
    paid = [f"race-{uuid.uuid4().hex[:10]}" for _ in range(12)]
    for order_id in paid:
        await reserve(db, order_id, sku, 2)
    await asyncio.gather(
        *(deliver(db, kind, order_id) for order_id in paid for kind in ("return", "commit") * 2)
    )
    [row] = await ledger(sku)
    assert sku_violations(row) == []
    assert (row["stock"], row["reserved"], row["sold"], row["returned"]) == (100, 0, 24, 24)


async def test_gathered_commits_settle_every_order_once_in_one_statement(db: Database):
    """`inventory.commit_many` (the commits the orders dispatcher gathered) on two skus, with
    an order already committed, one whose return overtook its commit and one unknown: each
    makes the move its own status allows, and a second delivery moves nothing."""
    hot, other = await new_product(db, stock=50), await new_product(db, stock=50)
    orders = [f"many-{uuid.uuid4().hex[:10]}" for _ in range(6)]
    for n, order_id in enumerate(orders):
        await reserve(db, order_id, hot if n % 2 else other, n + 1)
    await deliver(db, "commit", orders[0])  # committed alone before
    await deliver(db, "return", orders[1])  # refunded: its return came first
    many = CommitReservations(order_ids=[*orders, "ghost"])
    for _ in range(2):
        await handlers.commit_reservations(unit_of_work(db), many)
        for sku in (hot, other):
            [row] = await ledger(sku)
            assert sku_violations(row) == [], sku
    [hot_row], [other_row] = await ledger(hot), await ledger(other)
    # hot: orders 1 (returned, 2 units back), 3 and 5 (4 + 6 sold); other: 0, 2, 4 (1 + 3 + 5).
    assert (hot_row["stock"], hot_row["reserved"]) == (50 - 10, 0)
    assert (other_row["stock"], other_row["reserved"]) == (50 - 9, 0)
    statuses = await db.fetch_alone(
        "SELECT order_id, status FROM reservations WHERE order_id = ANY($1::text[])", orders
    )
    assert {row["order_id"]: row["status"] for row in statuses} == {
        order_id: "returned" if n == 1 else "committed" for n, order_id in enumerate(orders)
    }


async def test_restock_and_replace_are_received(db: Database):
    sku = await new_product(db, stock=4)
    await reserve(db, "rcv-1", sku, 1)
    await deliver(db, "commit", "rcv-1")
    await handlers.restock(unit_of_work(db), sku, 5)
    product = ProductIn(name=sku, price=500, currency="usd", stock=2)
    await handlers.put_product(unit_of_work(db), sku, product)  # a count found 2 on the shelf
    [row] = await ledger(sku)
    assert (row["stock"], row["received"], row["sold"]) == (2, 3, 1)
    assert sku_violations(row) == []


async def orders_row(order_id: str, status: str, refunded_ago_seconds: int) -> None:
    connection = await asyncpg.connect(f"{PG_SERVER}/{BASE}_orders")
    try:
        await connection.execute(
            "INSERT INTO orders (id, status, customer_id, customer_email, payment_method, items,"
            " updated_at) VALUES ($1, $2, 'cus_1', 'a@example.com', 'pm_card_visa', '[]',"
            " now() - make_interval(secs => $3))",
            order_id,
            status,
            float(refunded_ago_seconds),
        )
    finally:
        await connection.close()


async def test_the_audit_sees_stock_that_does_not_add_up(db: Database):
    """Green on what the moves leave; red on what today's main did with a return that
    overtook its commit (units never back), and on a unit moved without its reservation."""
    sku = await new_product(db, stock=10)
    for order_id in ("aud-ok", "aud-lost"):
        await reserve(db, order_id, sku, 1)
        await orders_row(order_id, "refunded", refunded_ago_seconds=3600)
    await deliver(db, "return", "aud-ok")
    await deliver(db, "commit", "aud-ok")
    verdict = await stock_consistent(SETTINGS, None)
    assert "aud-lost" in " ".join(verdict.violations)  # its return never came
    await deliver(db, "return", "aud-lost")
    verdict = await stock_consistent(SETTINGS, None)
    assert verdict.ok, verdict.violations

    # What the old settle did: the return found the order reserved and did nothing, then the
    # commit took the units for good, while the order was refunded.
    await db.fetch_alone("UPDATE reservations SET status = 'committed' WHERE order_id = 'aud-lost'")
    await db.fetch_alone("UPDATE products SET stock = stock - 1 WHERE sku = $1", sku)
    verdict = await stock_consistent(SETTINGS, None)
    assert verdict.violations == ["aud-lost refunded but its units are not back (committed)"]

    # A unit that left stock without a reservation saying so (a commit applied twice).
    await db.fetch_alone("UPDATE reservations SET status = 'returned' WHERE order_id = 'aud-lost'")
    verdict = await stock_consistent(SETTINGS, None)
    assert verdict.violations == [f"{sku}: stock 9 + sold 2 - returned 2 != received 10"]
    await db.fetch_alone("UPDATE products SET stock = stock + 1 WHERE sku = $1", sku)
    assert (await stock_consistent(SETTINGS, None)).ok
