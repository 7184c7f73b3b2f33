"""The inventory's use cases on a fake unit of work: no database, no broker."""

from __future__ import annotations

import asyncio
from collections import Counter
from itertools import permutations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ops.stock import sku_violations
from services.inventory import handlers
from services.inventory.domain import ProductNotFound
from services.inventory.schemas import ProductIn
from shared.messages.inventory import StockRejected, StockReserved
from shared.messages.orders import (
    CommitReservation,
    OrderLine,
    ReleaseReservation,
    ReserveStock,
    ReturnUnits,
)
from tests.unit.fakes.inventory import FakeInventoryWork


def reserve(order_id: str, *lines: tuple[str, int]) -> ReserveStock:
    items = [OrderLine(sku=sku, quantity=quantity) for sku, quantity in lines]
    return ReserveStock(order_id=order_id, items=items)


@pytest.fixture
def uow() -> FakeInventoryWork:
    work = FakeInventoryWork()
    work.inventory.add("A", stock=5, price=1200)
    work.inventory.add("B", stock=1, price=300)
    return work


async def test_a_reservation_holds_every_line_and_answers_reserved_with_prices(uow):
    await handlers.reserve_stock(uow, reserve("o1", ("B", 1), ("A", 2)))
    assert uow.counts("A") == (5, 2) and uow.counts("B") == (1, 1)
    [answer] = uow.sent
    assert isinstance(answer, StockReserved) and answer.currency == "usd"
    assert [(line.sku, line.unit_price) for line in answer.lines] == [("A", 1200), ("B", 300)]


async def test_one_short_line_holds_nothing_and_answers_out_of_stock(uow):
    await handlers.reserve_stock(uow, reserve("o1", ("A", 2), ("B", 2)))
    assert uow.counts("A") == (5, 0) and uow.counts("B") == (1, 0)
    assert uow.sent == [StockRejected(order_id="o1", reason="out_of_stock")]
    assert uow.inventory.reservations["o1"]["status"] == "rejected"


async def test_an_unknown_sku_is_named_as_such(uow):
    await handlers.reserve_stock(uow, reserve("o1", ("NOPE", 1)))
    assert uow.sent == [StockRejected(order_id="o1", reason="unknown_sku")]


async def test_a_redelivered_reservation_repeats_the_answer_not_the_hold(uow):
    await handlers.reserve_stock(uow, reserve("o1", ("A", 2)))
    await handlers.reserve_stock(uow, reserve("o1", ("A", 2)))
    assert uow.counts("A") == (5, 2)
    first, again = uow.sent
    assert first == again and isinstance(again, StockReserved)


async def test_the_last_unit_goes_to_one_order_only(uow):
    await handlers.reserve_stock(uow, reserve("o1", ("B", 1)))
    await handlers.reserve_stock(uow, reserve("o2", ("B", 1)))
    assert [type(answer) for answer in uow.sent] == [StockReserved, StockRejected]
    assert uow.counts("B") == (1, 1)


async def test_commit_takes_the_units_out_of_stock_once(uow):
    await handlers.reserve_stock(uow, reserve("o1", ("A", 2)))
    await handlers.commit_reservation(uow, CommitReservation(order_id="o1"))
    await handlers.commit_reservation(uow, CommitReservation(order_id="o1"))
    await handlers.release_reservation(uow, ReleaseReservation(order_id="o1"))
    assert uow.counts("A") == (3, 0)
    assert uow.inventory.reservations["o1"]["status"] == "committed"


async def test_release_frees_the_units_once(uow):
    await handlers.reserve_stock(uow, reserve("o1", ("A", 2)))
    await handlers.release_reservation(uow, ReleaseReservation(order_id="o1"))
    await handlers.release_reservation(uow, ReleaseReservation(order_id="o1"))
    assert uow.counts("A") == (5, 0)


async def test_a_refunded_order_returns_its_units_once(uow):
    await handlers.reserve_stock(uow, reserve("o1", ("A", 2)))
    await handlers.commit_reservation(uow, CommitReservation(order_id="o1"))
    await handlers.return_units(uow, ReturnUnits(order_id="o1"))
    await handlers.return_units(uow, ReturnUnits(order_id="o1"))
    assert uow.counts("A") == (5, 0)
    assert uow.inventory.reservations["o1"]["status"] == "returned"


async def test_commands_for_an_unknown_reservation_change_nothing(uow):
    await handlers.commit_reservation(uow, CommitReservation(order_id="ghost"))
    await handlers.return_units(uow, ReturnUnits(order_id="ghost"))
    assert uow.counts("A") == (5, 0) and uow.sent == []


async def test_a_replace_below_the_reserved_units_is_refused(uow):
    await handlers.reserve_stock(uow, reserve("o1", ("A", 4)))
    product = ProductIn(name="A", price=1200, currency="usd", stock=3)
    with pytest.raises(handlers.StockBelowReserved):
        await handlers.put_product(uow, "A", product)
    assert uow.counts("A") == (5, 4)
    row, created = await handlers.put_product(uow, "C", product)
    assert created and row["stock"] == 3


async def test_restocking_an_unknown_sku_is_not_found(uow):
    with pytest.raises(ProductNotFound):
        await handlers.restock(uow, "NOPE", 3)
    assert (await handlers.restock(uow, "B", 4))["stock"] == 5


# What the orders service sends the inventory once an order is reserved, by how it ends: a
# paid order's commit, a refunded one's commit and return, an unpaid one's release.
FATES = {"paid": ("commit",), "refunded": ("commit", "return"), "unpaid": ("release",)}
# Where each order's units end: (stock, reserved) moved by its quantity, and its status.
ENDS = {"paid": (-1, 0, "committed"), "refunded": (0, 0, "returned"), "unpaid": (0, 0, "released")}


async def deliver(uow: FakeInventoryWork, kind: str, order_id: str) -> None:
    if kind == "commit":
        await handlers.commit_reservation(uow, CommitReservation(order_id=order_id))
    elif kind == "release":
        await handlers.release_reservation(uow, ReleaseReservation(order_id=order_id))
    else:
        await handlers.return_units(uow, ReturnUnits(order_id=order_id))


def ledger_rows(uow: FakeInventoryWork) -> list[dict]:
    """The audit's ledger rows (ops/stock.py STOCK_LEDGER) computed from the fake's dicts."""
    moved: dict[str, Counter] = {sku: Counter() for sku in uow.inventory.products}
    for reservation in uow.inventory.reservations.values():
        for line in reservation["lines"]:
            units, status = moved.setdefault(line["sku"], Counter()), reservation["status"]
            units["held"] += line["quantity"] if status == "reserved" else 0
            units["sold"] += line["quantity"] if status in ("committed", "returned") else 0
            units["returned"] += line["quantity"] if status == "returned" else 0
    return [
        {**row, "held": moved[sku]["held"], "sold": moved[sku]["sold"],
         "returned": moved[sku]["returned"]}
        for sku, row in uow.inventory.products.items()
    ]  # fmt: skip


def assert_adds_up(uow: FakeInventoryWork) -> None:
    assert [v for row in ledger_rows(uow) for v in sku_violations(row)] == []


def arrivals(fate: str, copies: int) -> list[tuple[str, ...]]:
    """Every distinct order of arrival of an order's messages, each delivered `copies` times."""
    return sorted(set(permutations(FATES[fate] * copies)))


ARRIVALS = [(fate, arrival) for fate in FATES for n in (1, 2, 3) for arrival in arrivals(fate, n)]


@pytest.mark.parametrize(("fate", "arrival"), ARRIVALS)
async def test_every_arrival_order_and_any_duplicates_end_the_same(uow, fate, arrival):
    """A return may overtake its commit (the refund's message is published by another pool),
    and any message may be delivered again: the end is the same, and it adds up at each step."""
    await handlers.reserve_stock(uow, reserve("o1", ("A", 2), ("B", 1)))
    for kind in arrival:
        await deliver(uow, kind, "o1")
        assert_adds_up(uow)
    stock, reserved, status = ENDS[fate]
    assert uow.counts("A") == (5 + 2 * stock, reserved)
    assert uow.counts("B") == (1 + stock, reserved)
    assert uow.inventory.reservations["o1"]["status"] == status


async def test_a_return_that_overtakes_its_commit_loses_no_units(uow):
    await handlers.reserve_stock(uow, reserve("o1", ("A", 2)))
    await handlers.return_units(uow, ReturnUnits(order_id="o1"))
    assert uow.counts("A") == (5, 0)  # back and available at once
    await handlers.commit_reservation(uow, CommitReservation(order_id="o1"))
    assert uow.counts("A") == (5, 0)
    assert uow.inventory.reservations["o1"]["status"] == "returned"


async def test_a_release_after_a_commit_or_a_return_changes_nothing(uow):
    """Commit and release exclude each other: the first decides (the orders service never
    sends both for one order; if it did, the units would not move twice)."""
    await handlers.reserve_stock(uow, reserve("o1", ("A", 2)))
    await handlers.reserve_stock(uow, reserve("o2", ("A", 1)))
    await handlers.commit_reservation(uow, CommitReservation(order_id="o1"))
    await handlers.return_units(uow, ReturnUnits(order_id="o2"))
    await handlers.release_reservation(uow, ReleaseReservation(order_id="o1"))
    await handlers.release_reservation(uow, ReleaseReservation(order_id="o2"))
    assert uow.counts("A") == (3, 0)
    assert_adds_up(uow)


orders = st.lists(
    st.tuples(
        st.sampled_from(sorted(FATES)),
        st.lists(st.sampled_from("AB"), min_size=1, max_size=2, unique=True),
        st.integers(min_value=1, max_value=3),  # copies of each of its messages
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=200, deadline=None)
@given(orders=orders, data=st.data())
def test_interleaved_orders_with_duplicates_always_add_up(orders, data):
    """Several orders reserved, then every message of all of them delivered, each several
    times, in any interleaving (restocks among them): the ledger adds up after every step,
    and each sku ends where the orders' fates say."""
    uow = FakeInventoryWork()
    uow.inventory.add("A", stock=20)
    uow.inventory.add("B", stock=20)
    messages = []
    for n, (fate, skus, copies) in enumerate(orders):
        order_id = f"o{n}"
        asyncio.run(handlers.reserve_stock(uow, reserve(order_id, *[(sku, 1) for sku in skus])))
        messages += [(kind, order_id) for kind in FATES[fate] * copies]
    messages += [("restock", "A"), ("restock", "B")]
    for kind, target in data.draw(st.permutations(messages)):
        if kind == "restock":
            asyncio.run(handlers.restock(uow, target, 2))
        else:
            asyncio.run(deliver(uow, kind, target))
        assert_adds_up(uow)
    for sku in "AB":
        sold = sum(1 for fate, skus, _ in orders if fate == "paid" and sku in skus)
        assert uow.counts(sku) == (22 - sold, 0)


def test_the_ledger_check_sees_units_that_do_not_add_up():
    """The audit's arithmetic catches what the old settle did with a return that overtook
    its commit (the return found nothing to do, the commit then took the units for good)."""
    uow = FakeInventoryWork()
    uow.inventory.add("A", stock=5)
    asyncio.run(handlers.reserve_stock(uow, reserve("o1", ("A", 2))))
    asyncio.run(handlers.commit_reservation(uow, CommitReservation(order_id="o1")))
    uow.inventory.reservations["o1"]["status"] = "returned"  # refunded, units never back
    [row] = ledger_rows(uow)
    assert sku_violations(row) == ["A: stock 3 + sold 2 - returned 2 != received 5"]
    uow.inventory.products["A"]["stock"] -= 1  # a commit applied twice
    uow.inventory.reservations["o1"]["status"] = "committed"
    assert sku_violations(ledger_rows(uow)[0]) == ["A: stock 2 + sold 2 - returned 0 != received 5"]
