"""Named lists of subscribers: the list rows and their members."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from sqlalchemy import String, any_, bindparam, func, literal, select
from sqlalchemy.dialects.postgresql import ARRAY, insert

from services.notifications.db import list_members, lists, subscribers
from shared.messaging.uow import UnitOfWork

Row = Mapping[str, Any]


class ListRepository:
    def __init__(self, uow: UnitOfWork):
        self._uow = uow

    async def add(self, list_id: str, name: str) -> Row | None:
        """Insert the list; None when the name is taken."""
        statement = (
            insert(lists)
            .values(id=list_id, name=name)
            .on_conflict_do_nothing(index_elements=[lists.c.name])
            .returning(*lists.c)
        )
        return (await self._uow.session.execute(statement)).mappings().first()

    async def get(self, list_id: str) -> Row | None:
        query = select(*lists.c).where(lists.c.id == list_id)
        return (await self._uow.session.execute(query)).mappings().first()

    async def named(self, name: str) -> Row | None:
        query = select(*lists.c).where(lists.c.name == name)
        return (await self._uow.session.execute(query)).mappings().first()

    async def page(self, after: str | None, limit: int) -> list[Row]:
        query = select(*lists.c).order_by(lists.c.id).limit(limit)
        if after is not None:
            query = query.where(lists.c.id > after)
        return list((await self._uow.session.execute(query)).mappings())

    async def counts(self, list_id: str) -> tuple[int, int]:
        """(members, of them still subscribed)."""
        query = (
            select(func.count(), func.count().filter(subscribers.c.status == "subscribed"))
            .select_from(list_members)
            .join(subscribers, subscribers.c.id == list_members.c.subscriber_id)
            .where(list_members.c.list_id == list_id)
        )
        members, subscribed = (await self._uow.session.execute(query)).one()
        return members, subscribed

    async def add_members(self, list_id: str, emails: Collection[str]) -> int:
        """Put the stored subscribers with these addresses in the list (whatever their status:
        membership never resubscribes anyone); returns how many were not in it yet. One
        statement; run after the import's insert, its snapshot sees every address of the
        request, including ones a concurrent import inserted first."""
        emails_param = bindparam("emails", list(emails), type_=ARRAY(String))
        known = select(literal(list_id, String), subscribers.c.id).where(
            subscribers.c.email == any_(emails_param)
        )
        new = (
            insert(list_members)
            .from_select(["list_id", "subscriber_id"], known)
            .on_conflict_do_nothing()
            .returning(list_members.c.subscriber_id)
            .cte("new")
        )
        return await self._uow.session.scalar(select(func.count()).select_from(new)) or 0
