"""The subscribers: bulk import in one statement, unsubscribe (by address or by id), the
suppression of a chunk's bounces in one statement, a complaint."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import String, bindparam, case, func, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY, insert

from services.notifications.db import subscribers
from shared.messaging.uow import UnitOfWork

Row = Mapping[str, Any]


class SubscriberRepository:
    def __init__(self, uow: UnitOfWork):
        self._uow = uow

    async def add_new(self, people: Mapping[str, str | None]) -> int:
        """Insert the addresses (email -> name) not known yet; returns how many were new.

        The lists travel as two arrays (`unnest`), the insert skips known addresses (`ON
        CONFLICT DO NOTHING`) and only the count of new rows comes back: one round trip
        whatever the list's length, and nobody who unsubscribed is resubscribed."""
        rows = (
            func.unnest(
                bindparam("emails", list(people), type_=ARRAY(String)),
                bindparam("names", list(people.values()), type_=ARRAY(String)),
            )
            .table_valued("email", "name")
            .render_derived()
        )
        new = (
            insert(subscribers)
            .from_select(["email", "name"], select(rows.c.email, rows.c.name))
            .on_conflict_do_nothing(index_elements=[subscribers.c.email])
            .returning(subscribers.c.id)
            .cte("new")
        )
        return await self._uow.session.scalar(select(func.count()).select_from(new)) or 0

    async def unsubscribe(self, email: str) -> Row | None:
        """Mark a subscribed address unsubscribed (the first time's date kept; a bounced or
        complained one keeps its status); None if unknown."""
        subscribed = subscribers.c.status == "subscribed"
        statement = (
            update(subscribers)
            .where(subscribers.c.email == email)
            .values(
                status=case((subscribed, "unsubscribed"), else_=subscribers.c.status),
                unsubscribed_at=case(
                    (subscribed, func.coalesce(subscribers.c.unsubscribed_at, func.now())),
                    else_=subscribers.c.unsubscribed_at,
                ),
            )
            .returning(*_SUBSCRIPTION)
        )
        return (await self._uow.session.execute(statement)).mappings().first()

    async def bounce(self, reasons: Mapping[int, str]) -> int:
        """Mark these subscribed ids `bounced`, each with its SMTP reply; returns how many.

        One statement for a chunk's bounces, its row locks taken in id order (two campaigns
        bouncing the same addresses at once wait for each other instead of deadlocking); an
        address that left the audience meanwhile keeps its status."""
        result = await self._uow.session.execute(
            text(
                "WITH locked AS (SELECT id FROM subscribers WHERE id = ANY(CAST(:ids AS bigint[]))"
                " AND status = 'subscribed' ORDER BY id FOR UPDATE)"
                " UPDATE subscribers SET status = 'bounced', suppressed_at = now(),"
                " suppression = bounce.reason"
                " FROM locked, unnest(CAST(:ids AS bigint[]), CAST(:reasons AS text[]))"
                " AS bounce(id, reason)"
                " WHERE subscribers.id = locked.id AND bounce.id = locked.id"
            ),
            {"ids": list(reasons), "reasons": list(reasons.values())},
        )
        return result.rowcount

    async def complain(self, email: str, reason: str) -> Row | None:
        """Mark the address `complained` (the first complaint's time and reason kept), whatever
        its status; None if unknown. Returns the subscription with its id."""
        first = subscribers.c.status != "complained"
        statement = (
            update(subscribers)
            .where(subscribers.c.email == email)
            .values(
                status="complained",
                suppressed_at=case((first, func.now()), else_=subscribers.c.suppressed_at),
                suppression=case((first, reason), else_=subscribers.c.suppression),
            )
            .returning(subscribers.c.id, *_SUBSCRIPTION)
        )
        return (await self._uow.session.execute(statement)).mappings().first()

    async def locked(self, subscriber_id: int) -> Row | None:
        """Address and status of one subscriber, locked until the transaction ends."""
        statement = (
            select(*_SUBSCRIPTION).where(subscribers.c.id == subscriber_id).with_for_update()
        )
        return (await self._uow.session.execute(statement)).mappings().first()

    async def unsubscribe_id(self, subscriber_id: int) -> Row:
        """Mark a (locked, subscribed) subscriber unsubscribed as of now."""
        statement = (
            update(subscribers)
            .where(subscribers.c.id == subscriber_id)
            .values(status="unsubscribed", unsubscribed_at=func.now())
            .returning(*_SUBSCRIPTION)
        )
        return (await self._uow.session.execute(statement)).mappings().one()


_SUBSCRIPTION = (
    subscribers.c.email,
    subscribers.c.status,
    subscribers.c.unsubscribed_at,
    subscribers.c.suppressed_at,
    subscribers.c.suppression,
)
