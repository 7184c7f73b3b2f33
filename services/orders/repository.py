"""Reading and writing order rows: the one place an order's status is written."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.engine import RowMapping

from services.orders.db import orders
from services.orders.domain import OrderStatus, transition
from shared.contracts import MailKind
from shared.messaging.topology import TaskName
from shared.messaging.uow import UnitOfWork


class OrderNotFound(LookupError):
    pass


async def load_order(uow: UnitOfWork, order_id: str, lock: bool = False) -> RowMapping:
    """The order, read in the unit's transaction (locked for update with `lock`)."""
    query = select(orders).where(orders.c.id == order_id)
    if lock:
        query = query.with_for_update()
    return _found(order_id, (await uow.session.execute(query)).mappings().first())


async def read_order(uow: UnitOfWork, order_id: str) -> RowMapping:
    """The order as committed now, outside any transaction (one round trip): for a look
    before a slow call, whose outcome is then written under `load_order(lock=True)`."""
    rows = await uow.execute_alone(select(orders).where(orders.c.id == order_id))
    return _found(order_id, rows[0] if rows else None)


def _found(order_id: str, row: RowMapping | None) -> RowMapping:
    if row is None:
        raise OrderNotFound(order_id)
    return row


async def set_status(
    uow: UnitOfWork, order: RowMapping, target: OrderStatus, check: bool = True, **values: Any
) -> None:
    """Write `target` (and `values`) after the transition check; `check=False` only for
    writes that keep the status and change payment fields."""
    if check:
        transition(order["id"], order["status"], target)
    elif target != order["status"]:
        raise ValueError("an unchecked write may not change the status")
    await uow.session.execute(
        update(orders)
        .where(orders.c.id == order["id"])
        .values(status=target, updated_at=func.now(), **values)
    )


async def set_payment(uow: UnitOfWork, order: RowMapping, **values: Any) -> None:
    """Change payment fields only; the status stays as it is."""
    await set_status(uow, order, OrderStatus(order["status"]), check=False, **values)


def emit_mail(uow: UnitOfWork, order: RowMapping, kind: MailKind, **extra: Any) -> None:
    uow.emit(
        TaskName.SEND_ORDER_MAIL,
        order_id=order["id"],
        kind=kind,
        to=order["customer_email"],
        total=order["total"],
        currency=order["currency"],
        **{key: value for key, value in extra.items() if value is not None},
    )
