"""Subscriber and campaign routes: thin. Validate, call a handler, shape the answer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response
from sqlalchemy.engine import RowMapping

from services.notifications import campaigns as handlers
from services.notifications import subscribers
from services.notifications.domain import CampaignFinished, InvalidEmail, normalise_email
from services.notifications.schemas import (
    Campaign,
    CampaignAccepted,
    CampaignIn,
    ImportResult,
    SubscriberImport,
    Subscription,
)
from shared.messaging.topology import QueueName
from shared.messaging.uow import UnitOfWork
from shared.web.deps import AdminKey, AppSettings, StorefrontKey, UoW
from shared.web.problems import Problem
from shared.web.shedding import shed_if_backlogged

subscriber_router = APIRouter(prefix="/v1/subscribers", tags=["subscribers"])
campaign_router = APIRouter(prefix="/v1/campaigns", tags=["campaigns"])
CampaignId = Annotated[str, Path(max_length=40)]


@subscriber_router.post("", response_model=ImportResult)
async def import_subscribers(body: SubscriberImport, uow: UoW, _: AdminKey) -> ImportResult:
    """Add up to 10,000 subscribers in one request (one database round trip). Addresses are
    normalised (lowercase, ASCII domain); known ones are counted as `existing` and left as
    they are, so re-importing a list is harmless and never resubscribes anyone."""
    people = [subscribers.NewSubscriber(item.email, item.name) for item in body.subscribers]
    imported = await subscribers.import_subscribers(uow, people)
    return ImportResult(created=imported.created, existing=imported.existing)


@subscriber_router.post("/{email}/unsubscribe", response_model=Subscription)
async def unsubscribe(
    email: Annotated[str, Path(max_length=320)], uow: UoW, _: StorefrontKey
) -> Subscription:
    """No more campaign mail to this address, from the next chunk of a running campaign on."""
    try:
        normalised = normalise_email(email)
        row = await subscribers.unsubscribe(uow, normalised)
    except InvalidEmail as exc:
        raise Problem(422, "invalid-email", f"Not a valid email address: {exc}") from exc
    except subscribers.SubscriberNotFound as exc:
        raise Problem(404, "subscriber-not-found", "No subscriber with this address.") from exc
    return Subscription(**row)


def to_campaign(row: RowMapping) -> Campaign:
    return Campaign(**{name: row[name] for name in Campaign.model_fields})


@campaign_router.post(
    "",
    status_code=202,
    response_model=CampaignAccepted,
    # Campaign creation sheds first: the bulk queue has the lowest limit (docs/api.md).
    dependencies=[Depends(shed_if_backlogged(QueueName.BULK))],
)
async def create_campaign(
    body: CampaignIn, uow: UoW, settings: AppSettings, response: Response, _: AdminKey
) -> CampaignAccepted:
    """Queue a campaign to every subscribed address (202). It is sent in throttled batches on
    the bulk pool; follow `Location` for its progress."""
    new = handlers.NewCampaign(body.subject, body.body, settings.campaign_batch_size)
    row = await handlers.create_campaign(uow, new)
    response.headers["Location"] = f"/v1/campaigns/{row['id']}"
    return CampaignAccepted(id=row["id"], status=row["status"], total=row["total"])


@campaign_router.get("/{campaign_id}", response_model=Campaign)
async def get_campaign(campaign_id: CampaignId, uow: UoW, _: AdminKey) -> Campaign:
    """Status and progress: `sent + failed + skipped == total` once completed."""
    return await _call(handlers.get_campaign, uow, campaign_id)


@campaign_router.post("/{campaign_id}/pause", response_model=Campaign)
async def pause_campaign(campaign_id: CampaignId, uow: UoW, _: AdminKey) -> Campaign:
    """Stop sending within a second; `resume` continues where it stopped."""
    return await _call(handlers.pause_campaign, uow, campaign_id)


@campaign_router.post("/{campaign_id}/resume", response_model=Campaign)
async def resume_campaign(campaign_id: CampaignId, uow: UoW, _: AdminKey) -> Campaign:
    """Continue a paused campaign; nobody gets its mail twice."""
    return await _call(handlers.resume_campaign, uow, campaign_id)


@campaign_router.post("/{campaign_id}/cancel", response_model=Campaign)
async def cancel_campaign(campaign_id: CampaignId, uow: UoW, _: AdminKey) -> Campaign:
    """Stop sending within a second, for good."""
    return await _call(handlers.cancel_campaign, uow, campaign_id)


async def _call(
    handler: Callable[[UnitOfWork, str], Awaitable[RowMapping]], uow: UnitOfWork, campaign_id: str
) -> Campaign:
    try:
        row = await handler(uow, campaign_id)
    except handlers.CampaignNotFound as exc:
        raise Problem(404, "campaign-not-found", f"No campaign with id {campaign_id!r}.") from exc
    except CampaignFinished as exc:
        raise Problem(409, "campaign-finished", f"The campaign is already {exc}.") from exc
    return to_campaign(row)
