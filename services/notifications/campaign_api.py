"""Subscriber and campaign routes: thin. Validate, call a handler, shape the answer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response
from sqlalchemy.engine import RowMapping

from services.notifications import campaigns as handlers
from services.notifications import subscribers
from services.notifications.domain import CampaignFinished, InvalidEmail, normalise_email
from services.notifications.list_api import list_not_found
from services.notifications.lists import ListNotFound
from services.notifications.schemas import (
    Campaign,
    CampaignAccepted,
    CampaignIn,
    ComplaintIn,
    ImportResult,
    SubscriberImport,
    Subscription,
)
from services.notifications.unsubscribe import ONE_CLICK, UnsubscribeLinks, form_fields
from shared.messaging.topology import QueueName
from shared.messaging.uow import UnitOfWork
from shared.web.deps import AdminKey, AppSettings, StorefrontKey, UoW
from shared.web.problems import Problem
from shared.web.shedding import shed_if_backlogged

subscriber_router = APIRouter(prefix="/v1/subscribers", tags=["subscribers"])
campaign_router = APIRouter(prefix="/v1/campaigns", tags=["campaigns"])
unsubscribe_router = APIRouter(prefix="/v1/unsubscribe", tags=["subscribers"])
CampaignId = Annotated[str, Path(max_length=40)]


@subscriber_router.post(
    "",
    response_model=ImportResult,
    response_model_exclude_none=True,
    responses={404: {"description": "No list with this `list_id`"}},
)
async def import_subscribers(body: SubscriberImport, uow: UoW, _: AdminKey) -> ImportResult:
    """Add up to 10,000 subscribers in one request (one database round trip). Addresses are
    normalised (lowercase, ASCII domain); known ones are counted as `existing` and left as
    they are, so re-importing a list is harmless and never resubscribes anyone. With
    `list_id`, every address of the request is also put in that list (`listed`: how many
    were not in it yet)."""
    people = [subscribers.NewSubscriber(item.email, item.name) for item in body.subscribers]
    try:
        imported = await subscribers.import_subscribers(uow, people, body.list_id)
    except ListNotFound as exc:
        raise list_not_found(str(body.list_id)) from exc
    return ImportResult(
        created=imported.created, existing=imported.existing, listed=imported.listed
    )


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


@subscriber_router.post(
    "/{email}/complaint",
    response_model=Subscription,
    responses={404: {"description": "No subscriber with this address, or no such campaign"}},
)
async def record_complaint(
    email: Annotated[str, Path(max_length=320)],
    uow: UoW,
    _: AdminKey,
    body: ComplaintIn | None = None,
) -> Subscription:
    """Record a complaint (a mailbox provider's feedback-loop report, a "this is spam"): the
    address is `complained` and gets no campaign mail again, from the next chunk of a running
    campaign on. With `campaign_id` the complaint is counted in that campaign's `complained`
    (once per address). Repeating it changes nothing."""
    campaign_id = body.campaign_id if body is not None else None
    try:
        row = await subscribers.record_complaint(uow, normalise_email(email), campaign_id)
    except InvalidEmail as exc:
        raise Problem(422, "invalid-email", f"Not a valid email address: {exc}") from exc
    except subscribers.SubscriberNotFound as exc:
        raise Problem(404, "subscriber-not-found", "No subscriber with this address.") from exc
    except handlers.CampaignNotFound as exc:
        raise Problem(404, "campaign-not-found", f"No campaign with id {campaign_id!r}.") from exc
    return Subscription(**row)


@unsubscribe_router.post(
    "/{token}",
    response_model=Subscription,
    responses={
        403: {"description": "Not a token this service made (altered, forged)"},
        422: {"description": "The body is not `List-Unsubscribe=One-Click`"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "properties": {"List-Unsubscribe": {"const": "One-Click"}},
                        "required": ["List-Unsubscribe"],
                    }
                }
            },
        }
    },
)
async def unsubscribe_one_click(
    token: Annotated[str, Path(max_length=200)],
    request: Request,
    uow: UoW,
    settings: AppSettings,
) -> Subscription:
    """RFC 8058 one-click unsubscribe: the URL in a campaign mail's `List-Unsubscribe`, posted
    by the recipient's mailbox provider with the body `List-Unsubscribe=One-Click`. No key:
    the signed token is the authority. Repeating it changes nothing."""
    fields = form_fields(request.headers.get("content-type", ""), await request.body())
    if fields.get("List-Unsubscribe") != ONE_CLICK.partition("=")[2]:
        raise Problem(
            422,
            "validation-error",
            "The request is not valid; see `errors`.",
            errors=[{"field": "body.List-Unsubscribe", "message": "must be One-Click (RFC 8058)"}],
        )
    links = UnsubscribeLinks.from_settings(settings)
    try:
        row = await subscribers.unsubscribe_one_click(uow, links, token)
    except subscribers.InvalidUnsubscribeToken as exc:
        raise Problem(
            403, "invalid-unsubscribe-token", "This unsubscribe link is not valid."
        ) from exc
    return Subscription(**row)


def to_campaign(row: RowMapping) -> Campaign:
    return Campaign(**{name: row[name] for name in Campaign.model_fields})


@campaign_router.post(
    "",
    status_code=202,
    response_model=CampaignAccepted,
    responses={404: {"description": "No list with this `list_id`"}},
    # Campaign creation sheds first: the bulk queue has the lowest limit (docs/api.md).
    dependencies=[Depends(shed_if_backlogged(QueueName.BULK))],
)
async def create_campaign(
    body: CampaignIn, uow: UoW, settings: AppSettings, response: Response, _: AdminKey
) -> CampaignAccepted:
    """Queue a campaign to every subscribed address, or to the subscribed members of
    `list_id` (202); each address once, whatever lists it is in. It is sent in throttled
    batches on the bulk pool; follow `Location` for its progress."""
    new = handlers.NewCampaign(body.subject, body.body, settings.campaign_batch_size, body.list_id)
    try:
        row = await handlers.create_campaign(uow, new)
    except ListNotFound as exc:
        raise list_not_found(str(body.list_id)) from exc
    response.headers["Location"] = f"/v1/campaigns/{row['id']}"
    return CampaignAccepted(
        id=row["id"], status=row["status"], total=row["total"], list_id=row["list_id"]
    )


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
