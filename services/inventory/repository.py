"""Every SQL statement of the inventory service, and its unit of work.

Use cases (handlers.py) reach the database only through `uow.inventory`; a fake unit of work
with this repository in memory (tests/unit/fakes/) runs them with no database. Stock moves
are conditional updates, so two reservations racing for the last unit cannot both win.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert

from services.inventory.db import products, reservations
from services.inventory.domain import SETTLES, ReservationStatus
from shared.messages.inventory import PricedLine
from shared.messages.orders import OrderLine
from shared.messaging.uow import UnitOfWork, Work

Row = Mapping[str, Any]


@dataclass(frozen=True)
class Hold:
    """What holding an order's lines gave: every line priced, or the first sku that could
    not be held (and nothing held)."""

    lines: list[PricedLine]
    currency: str | None
    short_sku: str | None = None


class InventoryRepository:
    def __init__(self, uow: UnitOfWork):
        self._uow = uow

    async def put_product(self, sku: str, values: dict[str, Any]) -> Row | None:
        """Create or replace; None when a replace would set stock below the reserved units.
        The row carries `new` (created, not replaced)."""
        statement = insert(products).values(sku=sku, received=values["stock"], **values)
        # The update's right-hand sides read the row as it is (locked): a replace receives
        # the difference between the new stock and the stock it replaces.
        received = products.c.received + statement.excluded.stock - products.c.stock
        statement = statement.on_conflict_do_update(
            index_elements=[products.c.sku],
            set_={**values, "received": received, "updated_at": func.now()},
            where=products.c.reserved <= statement.excluded.stock,
        ).returning(*products.c, (products.c.created_at == products.c.updated_at).label("new"))
        return (await self._uow.session.execute(statement)).mappings().first()

    async def product(self, sku: str) -> Row | None:
        query = select(products).where(products.c.sku == sku)
        return (await self._uow.session.execute(query)).mappings().first()

    async def products_after(self, after: str | None, limit: int) -> list[Row]:
        query = select(products).order_by(products.c.sku).limit(limit)
        if after is not None:
            query = query.where(products.c.sku > after)
        return list((await self._uow.session.execute(query)).mappings())

    async def restock(self, sku: str, quantity: int) -> Row | None:
        statement = (
            update(products)
            .where(products.c.sku == sku)
            .values(
                stock=products.c.stock + quantity,
                received=products.c.received + quantity,
                updated_at=func.now(),
            )
            .returning(*products.c)
        )
        return (await self._uow.session.execute(statement)).mappings().first()

    async def claim_reservation(self, order_id: str, lines: Sequence[OrderLine]) -> bool:
        """Insert the order's reservation row unless it exists (a redelivered command)."""
        claimed = await self._uow.session.execute(
            insert(reservations)
            .values(
                order_id=order_id,
                status=ReservationStatus.RESERVED,
                lines=[line.model_dump() for line in lines],
            )
            .on_conflict_do_nothing()
            .returning(reservations.c.order_id)
        )
        return claimed.first() is not None

    async def reserve_one(self, order_id: str, line: OrderLine) -> Row | None:
        """Reserve an order of one line, outcome recorded, in one statement that commits
        alone; None if the order has a reservation already (a repeated command)."""
        rows = await self._uow.fetch_alone(
            _RESERVE_ONE, order_id, line.sku, line.quantity, [line.model_dump()]
        )
        return rows[0] if rows else None

    async def hold(self, lines: Sequence[OrderLine]) -> Hold:
        """Reserve every line (in the given order) or none: a later line that cannot be held
        undoes the earlier ones. With one line there is nothing to undo, and no savepoint (two
        round trips) is taken."""
        savepoint = await self._uow.session.begin_nested() if len(lines) > 1 else None
        priced: list[PricedLine] = []
        currency: str | None = None
        for line in lines:
            row = await self._hold_line(line)
            if row is None:
                if savepoint is not None:
                    await savepoint.rollback()
                return Hold([], None, short_sku=line.sku)
            priced.append(PricedLine(sku=line.sku, quantity=line.quantity, unit_price=row[0]))
            currency = row[1]
        if savepoint is not None:
            await savepoint.commit()
        return Hold(priced, currency)

    async def _hold_line(self, line: OrderLine) -> tuple[int, str] | None:
        """(price, currency) of the sku, if `quantity` more units were free and are now held."""
        row = (
            await self._uow.session.execute(
                update(products)
                .where(
                    products.c.sku == line.sku,
                    products.c.stock - products.c.reserved >= line.quantity,
                )
                .values(reserved=products.c.reserved + line.quantity, updated_at=func.now())
                .returning(products.c.price, products.c.currency)
            )
        ).first()
        return (row.price, row.currency) if row is not None else None

    async def sku_exists(self, sku: str) -> bool:
        query = select(products.c.sku).where(products.c.sku == sku)
        return await self._uow.session.scalar(query) is not None

    async def reservation(self, order_id: str) -> Row | None:
        query = select(reservations).where(reservations.c.order_id == order_id)
        return (await self._uow.session.execute(query)).mappings().first()

    async def set_reservation(
        self,
        order_id: str,
        status: ReservationStatus,
        reason: str | None = None,
        lines: list[PricedLine] | None = None,
        currency: str | None = None,
    ) -> None:
        values: dict[str, Any] = {"status": status, "reason": reason, "updated_at": func.now()}
        if lines is not None:
            values["lines"] = [line.model_dump() for line in lines]
            values["currency"] = currency
        await self._uow.session.execute(
            update(reservations).where(reservations.c.order_id == order_id).values(**values)
        )

    async def settle(self, order_ids: Sequence[str], settle: str) -> int:
        """Make, for each order's reservation, the move of `settle` (`commit`, `release`,
        `return`: domain.SETTLES) that starts from its status, with its lines' units, in one
        statement; how many moved (none for an absent or already settled reservation)."""
        [row] = await self._uow.fetch_alone(_SETTLE, list(order_ids), settle)
        return int(row["settled"])


# Reserve an order of one line in one statement, committed alone: lock the product row, record
# the reservation with its outcome (priced, or rejected and why), and hold the units if it fits.
# A second delivery of the same command conflicts on the reservation row and changes nothing.
_RESERVE_ONE = """
    WITH product AS (
        SELECT price, currency, stock - reserved >= $3 AS fits
        FROM products WHERE sku = $2
        FOR UPDATE
    ), claimed AS (
        INSERT INTO reservations (order_id, status, reason, lines, currency)
        SELECT $1,
               CASE WHEN product.fits THEN 'reserved' ELSE 'rejected' END,
               CASE WHEN product.fits THEN NULL
                    WHEN product.price IS NULL THEN 'unknown_sku'
                    ELSE 'out_of_stock' END,
               CASE WHEN product.fits
                    THEN jsonb_build_array(jsonb_build_object(
                        'sku', $2::text, 'quantity', $3::integer, 'unit_price', product.price))
                    ELSE $4::jsonb END,
               CASE WHEN product.fits THEN product.currency END
        FROM (SELECT 1) AS one LEFT JOIN product ON true
        ON CONFLICT (order_id) DO NOTHING
        RETURNING *
    ), held AS (
        UPDATE products SET reserved = reserved + $3, updated_at = now()
        WHERE sku = $2 AND EXISTS (SELECT 1 FROM claimed WHERE status = 'reserved')
        RETURNING sku
    )
    SELECT claimed.*, (SELECT count(*) FROM held) AS held FROM claimed
"""


# Settle a reservation in one statement, committed alone. The reservation row is locked first
# and its status read (FOR UPDATE reads the latest version, after a concurrent settle commits),
# so the move is chosen from what the row is now: a return racing its commit sees either
# `reserved` or `committed`, never a stale status. A repeat finds no move from the status it
# left. The rules are domain.SETTLES written out as a VALUES list (a constant: the statement is
# prepared once), chosen by one text parameter. Then the units move; product rows are locked
# in sku order, as reservations lock them, so overlapping multi-line orders cannot deadlock.
_SETTLE_RULES = ", ".join(
    f"('{settle}', '{move.current}', '{move.target}', {move.stock}, {move.reserved})"
    for settle, moves in SETTLES.items()
    for move in moves
)
_SETTLE = f"""
    WITH now_is AS MATERIALIZED (
        SELECT order_id, status FROM reservations WHERE order_id = ANY($1::text[])
        ORDER BY order_id
        FOR UPDATE
    ), rule AS (
        SELECT * FROM (VALUES {_SETTLE_RULES})
            AS rule (settle, current, target, stock_sign, reserved_sign)
        WHERE settle = $2
    ), settled AS (
        UPDATE reservations SET status = rule.target, updated_at = now()
        FROM now_is JOIN rule ON rule.current = now_is.status
        WHERE reservations.order_id = now_is.order_id
        RETURNING reservations.lines, rule.stock_sign, rule.reserved_sign
    ), units AS (
        SELECT line->>'sku' AS sku,
               sum(stock_sign * (line->>'quantity')::int) AS stock_delta,
               sum(reserved_sign * (line->>'quantity')::int) AS reserved_delta
        FROM settled, jsonb_array_elements(settled.lines) AS line
        GROUP BY 1
    ), locked AS (
        SELECT products.sku FROM products JOIN units USING (sku)
        ORDER BY products.sku
        FOR UPDATE OF products
    ), moved AS (
        UPDATE products
        SET stock = products.stock + units.stock_delta,
            reserved = products.reserved + units.reserved_delta,
            updated_at = now()
        FROM units JOIN locked USING (sku)
        WHERE products.sku = units.sku
        RETURNING products.sku
    )
    SELECT (SELECT count(*) FROM settled) AS settled, (SELECT count(*) FROM moved) AS moved
"""  # noqa: S608 - the rules are the domain's constant table (no input): one text parameter


class InventoryWork(Work, Protocol):
    """What the inventory use cases take: a unit of work with the inventory repository."""

    inventory: InventoryRepository


class InventoryUnitOfWork(UnitOfWork):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.inventory = InventoryRepository(self)
