"""Subscriber use cases: bulk import (one statement per request) and unsubscribe."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import String, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.engine import RowMapping

from services.notifications.db import subscribers
from shared.messaging.uow import UnitOfWork


class SubscriberNotFound(LookupError):
    pass


@dataclass(frozen=True)
class NewSubscriber:
    email: str  # normalised (domain.normalise_email)
    name: str | None = None


@dataclass(frozen=True)
class Imported:
    created: int
    existing: int


def _distinct(people: Sequence[NewSubscriber]) -> dict[str, str | None]:
    """One entry per address; the first name given for it wins."""
    distinct: dict[str, str | None] = {}
    for person in people:
        distinct.setdefault(person.email, person.name)
    return distinct


async def import_subscribers(uow: UnitOfWork, people: Sequence[NewSubscriber]) -> Imported:
    """Add the addresses not known yet, in one round trip whatever the list's length.

    The lists travel as two arrays (`unnest`), the insert skips known addresses (`ON CONFLICT
    DO NOTHING`) and only the count of new rows comes back, so re-importing a list is harmless
    and never resubscribes anyone who unsubscribed. Every entry is accounted for: an address
    repeated within the list is stored once and its repeats count as `existing`.
    """
    distinct = _distinct(people)
    rows = (
        func.unnest(
            bindparam("emails", list(distinct), type_=ARRAY(String)),
            bindparam("names", list(distinct.values()), type_=ARRAY(String)),
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
    async with uow:
        created = await uow.session.scalar(select(func.count()).select_from(new)) or 0
        await uow.commit()
    return Imported(created=created, existing=len(people) - created)


async def unsubscribe(uow: UnitOfWork, email: str) -> RowMapping:
    """Stop all campaign mail to `email` from the next chunk on; repeating it changes nothing.

    Batches read each subscriber's status when they claim it, so a campaign already sending
    skips the address in every chunk not yet claimed.
    """
    async with uow:
        row = (
            (
                await uow.session.execute(
                    update(subscribers)
                    .where(subscribers.c.email == email)
                    .values(
                        status="unsubscribed",
                        unsubscribed_at=func.coalesce(subscribers.c.unsubscribed_at, func.now()),
                    )
                    .returning(
                        subscribers.c.email, subscribers.c.status, subscribers.c.unsubscribed_at
                    )
                )
            )
            .mappings()
            .first()
        )
        if row is None:
            raise SubscriberNotFound(email)
        await uow.commit()
        return row
