"""Every SQL statement of the orders service, and its unit of work.

Use cases (handlers.py, billing.py, webhooks.py) reach the database only through
`uow.orders`, so a fake unit of work with an in-memory repository (tests/unit/fakes/) runs them
with no database. The rules stay outside: `set_status` checks the transition (domain.py) before
it writes, in the real repository and the fake alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import (
    exists,
    func,
    select,
    tuple_,
    update,
)

from services.orders.db import idempotency_keys, orders, outbox
from services.orders.domain import OrderStatus, transition
from shared.messaging.uow import UnitOfWork, Work
from shared.messaging.wire import OutgoingTask

Order = Mapping[str, Any]


class OrderNotFound(LookupError):
    pass


@dataclass(frozen=True)
class NewOrder:
    id: str
    customer_id: str
    customer_email: str
    payment_method: str
    items: list[dict[str, Any]]


@dataclass(frozen=True)
class KeyClaim:
    """An idempotency key: its scope (the API key's), the key and the request's fingerprint."""

    scope: str
    key: str
    fingerprint: str


@dataclass(frozen=True)
class Placement:
    """What placing found: the key's lock taken elsewhere (`held` False), the key used before
    (`order` None), or the new order."""

    held: bool
    order: Order | None


# One statement places an order, committed by PostgreSQL itself (autocommit: no BEGIN and no
# COMMIT round trips): take the key's advisory lock (a concurrent request with the same key
# gets 409 instead of waiting), claim the key, insert the order and its reserve task's outbox
# row. Nothing is written when the lock is taken elsewhere or the key exists. (Profiled: the
# five statements and the transaction this replaces were over a third of the request's CPU;
# docs/benchmarks.md, "Intake".)
_PLACE = """
    WITH lock AS (
        SELECT pg_try_advisory_xact_lock(hashtextextended($1::text || $2::text, 0)) AS held
    ), claimed AS (
        INSERT INTO idempotency_keys (scope, key, fingerprint, order_id)
        SELECT $1, $2, $3, $4 FROM lock WHERE held
        ON CONFLICT (scope, key) DO NOTHING
        RETURNING order_id
    ), placed AS (
        INSERT INTO orders (id, status, customer_id, customer_email, payment_method, items)
        SELECT order_id, $5, $6, $7, $8, $9::jsonb
        FROM claimed
        RETURNING *
    ), queued AS (
        INSERT INTO outbox (task_id, task_name, kwargs, correlation_id)
        SELECT $10, $11, $12::jsonb, $13 FROM placed
    )
    SELECT lock.held, placed.* FROM lock LEFT JOIN placed ON true
"""
# The columns a step may write besides the status (`advance`'s SQL is built from these names
# only, never from input).
_WRITABLE = frozenset(
    {"reason", "items", "total", "currency", "payment_status", "payment_intent_id", "refund_reason"}
)
_QUEUE_IF_MOVED = """
    , queued AS (
        INSERT INTO outbox (task_id, task_name, kwargs, correlation_id)
        SELECT * FROM unnest($%d::text[], $%d::text[], $%d::jsonb[], $%d::text[])
        WHERE EXISTS (SELECT 1 FROM moved)
    )
"""


def _advance_sql(columns: Sequence[str], emitting: bool, stamp_reserved: bool = False) -> str:
    """`UPDATE orders ... WHERE id = $1 AND status = $2`, setting the status ($3) and
    `columns` ($4...), with the outbox rows of `emitting` (four arrays after them); with
    `stamp_reserved`, `reserved_at` is the database's now (the clock the sweep reads)."""
    unknown = set(columns) - _WRITABLE
    if unknown:
        raise ValueError(f"not a column a step writes: {sorted(unknown)}")
    sets = "".join(f", {column} = ${n}" for n, column in enumerate(columns, start=4))
    if stamp_reserved:  # the expiry clock starts when the reservation is applied
        sets += ", reserved_at = now()"
    moved = (
        f"UPDATE orders SET status = $3, updated_at = now(){sets}"  # noqa: S608 - names above
        " WHERE id = $1 AND status = $2 RETURNING *"
    )
    if not emitting:
        return moved
    first = 4 + len(columns)
    queue = _QUEUE_IF_MOVED % (first, first + 1, first + 2, first + 3)
    return f"WITH moved AS ({moved}){queue} SELECT * FROM moved"  # noqa: S608 - names above


class OrderRepository:
    """The orders table and the idempotency keys, read and written in the unit's transaction
    (or alone, where a step is one statement)."""

    def __init__(self, uow: UnitOfWork):
        self._uow = uow

    async def place(self, order: NewOrder, claim: KeyClaim, first: OutgoingTask) -> Placement:
        """Claim the key, insert the pending order and the outbox row of its first message,
        all in one statement that commits alone."""
        [row] = await self._uow.fetch_alone(
            _PLACE,
            claim.scope,
            claim.key,
            claim.fingerprint,
            order.id,
            OrderStatus.PENDING.value,
            order.customer_id,
            order.customer_email,
            order.payment_method,
            order.items,
            first.id,
            first.name,
            first.kwargs,
            first.correlation_id,
        )
        return Placement(held=row["held"], order=row if row["id"] is not None else None)

    async def key_use(self, scope: str, key: str) -> tuple[str, str]:
        """The fingerprint and order id recorded for a key that exists."""
        row = (
            await self._uow.session.execute(
                select(idempotency_keys.c.fingerprint, idempotency_keys.c.order_id).where(
                    idempotency_keys.c.scope == scope, idempotency_keys.c.key == key
                )
            )
        ).one()
        return row.fingerprint, row.order_id

    async def get(self, order_id: str, lock: bool = False) -> Order:
        """The order, read in the unit's transaction (locked for update with `lock`)."""
        query = select(orders).where(orders.c.id == order_id)
        if lock:
            query = query.with_for_update()
        return _found(order_id, (await self._uow.session.execute(query)).mappings().first())

    async def read(self, order_id: str) -> Order:
        """The order as committed now, outside any transaction (one round trip): for a look
        before a slow call, whose outcome is then written under `get(lock=True)`."""
        rows = await self._uow.fetch_alone("SELECT * FROM orders WHERE id = $1", order_id)
        return _found(order_id, rows[0] if rows else None)

    async def newest(
        self, customer_id: str | None, after: tuple[datetime, str] | None, limit: int
    ) -> list[Order]:
        """Newest first; the cursor is the (created_at, id) of the last order seen."""
        query = select(orders).order_by(orders.c.created_at.desc(), orders.c.id.desc()).limit(limit)
        if customer_id is not None:
            query = query.where(orders.c.customer_id == customer_id)
        if after is not None:
            query = query.where(tuple_(orders.c.created_at, orders.c.id) < tuple_(*after))
        return list((await self._uow.session.execute(query)).mappings())

    async def expirable(self, allowed: timedelta, limit: int) -> list[Order]:
        """Reserved orders whose reservation is older than `allowed` and that have no message
        left unpublished in this service's outbox, oldest reservation first, locked; rows
        another sweep holds are skipped (SKIP LOCKED), so concurrent sweeps share the work.
        Pending orders are never among them (handlers.expire_reservations says why)."""
        query = (
            select(orders)
            .where(
                orders.c.status == OrderStatus.RESERVED,
                orders.c.reserved_at < func.now() - allowed,
                ~_unpublished_message_of(orders.c.id),
            )
            .order_by(orders.c.reserved_at)
            .limit(limit)
            .with_for_update(of=orders, skip_locked=True)
        )
        return list((await self._uow.session.execute(query)).mappings().all())

    async def stalled(self, age: timedelta, limit: int) -> tuple[int, list[str]]:
        """Pending orders older than `age` with nothing left unpublished in this service's
        outbox (their reserve went out and is not answered yet): how many, and the oldest
        `limit` ids. Read alone, outside any transaction; the outbox is read through its
        unpublished-rows index only (it keeps every row ever sent)."""
        rows = await self._uow.fetch_alone(
            "SELECT id, count(*) OVER () AS stalled FROM orders o"
            " WHERE status = 'pending' AND created_at < now() - $1::interval"
            " AND NOT EXISTS (SELECT 1 FROM outbox WHERE published_at IS NULL"
            " AND kwargs->>'order_id' = o.id)"
            " ORDER BY created_at LIMIT $2",
            age,
            limit,
        )
        return (rows[0]["stalled"] if rows else 0), [row["id"] for row in rows]

    async def charged_or_listed(self, since: datetime, order_ids: Sequence[str]) -> list[Order]:
        """What the reconciliation compares with the provider: the orders created since
        `since` that hold (or gave back) money, and the orders of `order_ids` (the provider's
        intents name them), whatever their age or status. One statement, alone."""
        return await self._uow.fetch_alone(
            "SELECT * FROM orders WHERE (created_at >= $1 AND status IN ('paid', 'refunded'))"
            " OR id = ANY($2::text[])",
            since,
            list(order_ids),
        )

    async def advance(
        self,
        order_id: str,
        current: OrderStatus,
        target: OrderStatus,
        emitting: Sequence[OutgoingTask] = (),
        **values: Any,
    ) -> Order | None:
        """Move the order from `current` to `target` (with `values`) if it still is `current`,
        writing the outbox rows of `emitting` with it, in one statement that commits alone.
        Returns the row as written, or None if the order was not `current` (another delivery
        moved it, or a cancel), and then nothing is written."""
        transition(order_id, current, target)
        columns = sorted(values)
        arguments: list[Any] = [order_id, OrderStatus(current).value, OrderStatus(target).value]
        arguments += [values[column] for column in columns]
        if emitting:
            arguments += [
                [task.id for task in emitting],
                [task.name for task in emitting],
                [task.kwargs for task in emitting],
                [task.correlation_id for task in emitting],
            ]
        reserving = OrderStatus(target) == OrderStatus.RESERVED
        sql = _advance_sql(columns, bool(emitting), stamp_reserved=reserving)
        rows = await self._uow.fetch_alone(sql, *arguments)
        return rows[0] if rows else None

    async def set_status(
        self, order: Order, target: OrderStatus, check: bool = True, **values: Any
    ) -> None:
        """Write `target` (and `values`) after the transition check; `check=False` only for
        writes that keep the status and change payment fields."""
        if check:
            transition(order["id"], order["status"], target)
        elif target != order["status"]:
            raise ValueError("an unchecked write may not change the status")
        await self._write(order["id"], status=target, **values)

    async def set_payment(self, order: Order, **values: Any) -> None:
        """Change payment fields only; the status stays as it is."""
        await self.set_status(order, OrderStatus(order["status"]), check=False, **values)

    async def _write(self, order_id: str, **values: Any) -> None:
        await self._uow.session.execute(
            update(orders).where(orders.c.id == order_id).values(updated_at=func.now(), **values)
        )


def _unpublished_message_of(order_id: Any) -> Any:
    """Whether a message about the order waits in the outbox (not yet confirmed by the
    broker): its next step has not even left this service."""
    return exists().where(
        outbox.c.published_at.is_(None), outbox.c.kwargs["order_id"].astext == order_id
    )


def _found(order_id: str, row: Order | None) -> Order:
    if row is None:
        raise OrderNotFound(order_id)
    return row


class OrdersWork(Work, Protocol):
    """What the orders use cases take: a unit of work with the orders repository."""

    orders: OrderRepository


class OrdersUnitOfWork(UnitOfWork):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.orders = OrderRepository(self)
