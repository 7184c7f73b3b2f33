"""Subscriber use cases: bulk import (one statement per request), unsubscribe by address,
RFC 8058 one-click unsubscribe by a campaign mail's signed token, and a complaint (a mailbox
provider's feedback-loop report) recorded by an admin."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from services.notifications.campaigns import CampaignNotFound
from services.notifications.lists import require_list
from services.notifications.repository import NotificationsWork, Row
from services.notifications.unsubscribe import UnsubscribeLinks, parse_token

log = logging.getLogger(__name__)


class SubscriberNotFound(LookupError):
    pass


class InvalidUnsubscribeToken(ValueError):
    """Not a token we made: malformed, altered, forged, or for an address no longer stored."""


@dataclass(frozen=True)
class NewSubscriber:
    email: str  # normalised (domain.normalise_email)
    name: str | None = None


@dataclass(frozen=True)
class Imported:
    created: int
    existing: int
    listed: int | None = None  # addresses put in the list now (None: no list named)


def _distinct(people: Sequence[NewSubscriber]) -> dict[str, str | None]:
    """One entry per address; the first name given for it wins."""
    distinct: dict[str, str | None] = {}
    for person in people:
        distinct.setdefault(person.email, person.name)
    return distinct


async def import_subscribers(
    uow: NotificationsWork, people: Sequence[NewSubscriber], list_id: str | None = None
) -> Imported:
    """Add the addresses not known yet, in one round trip whatever the list's length, so
    re-importing a list is harmless and never resubscribes anyone who unsubscribed. Every entry
    is accounted for: an address repeated within the list is stored once and its repeats count
    as `existing`.

    With `list_id`, every address of the request, new or known, is also put in that list (one
    more statement, same transaction; `ListNotFound` if there is no such list): membership
    never changes a subscriber's status.
    """
    distinct = _distinct(people)
    async with uow:
        await require_list(uow, list_id)
        created = await uow.subscribers.add_new(distinct)
        listed = None
        if list_id is not None:
            listed = await uow.lists.add_members(list_id, list(distinct))
        await uow.commit()
    return Imported(created=created, existing=len(people) - created, listed=listed)


async def unsubscribe(uow: NotificationsWork, email: str) -> Row:
    """Stop all campaign mail to `email` from the next chunk on; repeating it changes nothing.

    Batches read each subscriber's status when they claim it, so a campaign already sending
    skips the address in every chunk not yet claimed.
    """
    async with uow:
        row = await uow.subscribers.unsubscribe(email)
        if row is None:
            raise SubscriberNotFound(email)
        await uow.commit()
        return row


async def record_complaint(uow: NotificationsWork, email: str, campaign_id: str | None) -> Row:
    """Take `email` out of every audience for good (`complained`), whatever its status, from
    the next chunk of a running campaign on, like an unsubscribe. Naming the campaign whose
    mail was reported counts the complaint in its `complained`, once per address however
    often the report is repeated (and only if that campaign's mail was sent to it).
    """
    async with uow:
        if campaign_id is not None and await uow.campaigns.get(campaign_id) is None:
            raise CampaignNotFound(campaign_id)
        reason = f"complaint about {campaign_id}" if campaign_id else "complaint"
        row = await uow.subscribers.complain(email, reason)
        if row is None:
            raise SubscriberNotFound(email)
        if campaign_id is not None and await uow.deliveries.complaint(campaign_id, row["id"]):
            await uow.campaigns.count_complaint(campaign_id)
        await uow.commit()
    log.info("subscriber %d complained (%s)", row["id"], reason)
    return row


async def unsubscribe_one_click(uow: NotificationsWork, links: UnsubscribeLinks, token: str) -> Row:
    """Unsubscribe the address a campaign mail's List-Unsubscribe token names, once its mac
    holds for the address stored under that id. Repeating it changes nothing; an address
    already out of the audience for another reason (bounced, say) keeps its status.

    Like `unsubscribe`, it takes effect from the next chunk claimed: later batches of the
    running campaign skip the address (the claim reads each subscriber's status).
    """
    claim = parse_token(token)
    if claim is None:
        raise InvalidUnsubscribeToken("malformed")
    async with uow:
        row = await uow.subscribers.locked(claim.subscriber_id)
        if row is None or not links.holds(claim, row["email"]):
            raise InvalidUnsubscribeToken("does not verify")
        if row["status"] == "subscribed":
            row = await uow.subscribers.unsubscribe_id(claim.subscriber_id)
            log.info(
                "subscriber %d unsubscribed in one click from campaign %s",
                claim.subscriber_id,
                claim.campaign_id,
            )
        await uow.commit()
        return row
