"""List use cases: named audiences. A subscriber is in any number of lists (an import puts
its addresses in one); a campaign targets one list, or every subscriber when it names none.

A list only says who a campaign may reach. Whether an address gets mail stays its
subscriber's status: unsubscribing, a bounce or a complaint takes it out of every list's
campaigns, and adding it to a list never resubscribes it.
"""

from __future__ import annotations

import uuid

from services.notifications.repository import NotificationsWork, Row


class ListNotFound(LookupError):
    pass


class ListNameTaken(Exception):
    """Another list has this name (names are unique: a campaign is aimed by them in tools)."""

    def __init__(self, existing: Row):
        super().__init__(existing["name"])
        self.existing = existing


def new_list_id() -> str:
    return f"lst_{uuid.uuid4().hex}"


async def create_list(uow: NotificationsWork, name: str) -> Row:
    async with uow:
        row = await uow.lists.add(new_list_id(), name)
        if row is None:
            existing = await uow.lists.named(name)
            assert existing is not None  # names are never deleted
            raise ListNameTaken(existing)
        await uow.commit()
    return {**row, "members": 0, "subscribed": 0}


async def get_list(uow: NotificationsWork, list_id: str) -> Row:
    """The list with how many members it has, and how many of them campaigns would reach."""
    async with uow:
        row = await uow.lists.get(list_id)
        if row is None:
            raise ListNotFound(list_id)
        members, subscribed = await uow.lists.counts(list_id)
    return {**row, "members": members, "subscribed": subscribed}


async def list_lists(uow: NotificationsWork, after: str | None, limit: int) -> list[Row]:
    async with uow:
        return await uow.lists.page(after, limit)


async def require_list(uow: NotificationsWork, list_id: str | None) -> None:
    """Inside a transaction: raise `ListNotFound` unless `list_id` is None or a list."""
    if list_id is not None and await uow.lists.get(list_id) is None:
        raise ListNotFound(list_id)
