"""HTTP models of the notifications API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from services.notifications.domain import (
    CampaignStatus,
    InvalidEmail,
    SubscriberStatus,
    normalise_email,
)
from shared.messages.orders import MailKind


class Notification(BaseModel):
    id: str
    order_id: str
    kind: MailKind
    to: str
    status: Literal["sent", "failed"]
    sent_at: datetime | None


class NotificationList(BaseModel):
    items: list[Notification]
    next_cursor: str | None


def _email(value: str) -> str:
    try:
        return normalise_email(value)
    except InvalidEmail as exc:
        raise ValueError(f"not a valid email address: {exc}") from exc


Email = Annotated[str, StringConstraints(max_length=320), AfterValidator(_email)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SubscriberIn(Strict):
    email: Email
    name: Annotated[str, StringConstraints(max_length=200)] | None = None


ListRef = Annotated[str, StringConstraints(max_length=40)]


class SubscriberImport(Strict):
    subscribers: list[SubscriberIn] = Field(min_length=1, max_length=10_000)
    list_id: ListRef | None = Field(
        None,
        description="Put every address of the request, new or known, in this list (`POST "
        "/v1/lists`); its status is not changed (nobody is resubscribed).",
    )


class ImportResult(BaseModel):
    created: int = Field(description="Addresses added by this request.")
    existing: int = Field(description="Addresses known before (or repeated in the request).")
    listed: int | None = Field(
        None, description="With `list_id`: addresses put in the list now (the others were in it)."
    )


class ListIn(Strict):
    name: Annotated[
        str,
        StringConstraints(
            strip_whitespace=True, min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$"
        ),
    ]


class SubscriberList(BaseModel):
    id: str
    name: str
    created_at: datetime


class SubscriberListCounts(SubscriberList):
    members: int = Field(description="Addresses in the list, whatever their status.")
    subscribed: int = Field(description="Of them, the ones a campaign to this list would mail.")


class SubscriberListPage(BaseModel):
    items: list[SubscriberList]
    next_cursor: str | None


class Subscription(BaseModel):
    email: str
    status: SubscriberStatus = Field(
        description="Only `subscribed` gets campaign mail; the others are suppressed for good."
    )
    unsubscribed_at: datetime | None
    suppressed_at: datetime | None = Field(
        None, description="When a bounce or a complaint took the address out."
    )
    suppression: str | None = Field(
        None, description="Why: the SMTP server's reply to the bounced mail, or the complaint."
    )


CampaignRef = Annotated[str, StringConstraints(max_length=40)]


class ComplaintIn(Strict):
    campaign_id: CampaignRef | None = Field(
        None, description="The campaign whose mail was reported: counted in its `complained`."
    )


class CampaignIn(Strict):
    subject: Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\r\n]+$")]
    # Below the 64 KiB request limit, so a valid body is never refused as too large.
    body: Annotated[str, StringConstraints(min_length=1, max_length=50_000)]
    list_id: ListRef | None = Field(
        None, description="Mail this list's subscribed members only; none: every subscriber."
    )


class CampaignAccepted(BaseModel):
    id: str
    status: CampaignStatus
    total: int
    list_id: str | None = Field(None, description="The list it goes to; null: every subscriber.")


class Campaign(CampaignAccepted):
    sent: int
    failed: int
    skipped: int = Field(
        description="Addresses that left the audience (unsubscribed, bounced, complained) "
        "after the campaign was created."
    )
    bounced: int = Field(
        description="Of `failed`, the addresses the mail server refused for good (5xx at RCPT "
        "or DATA): now `bounced`, mailed no more."
    )
    complained: int = Field(
        description="Of `sent`, the addresses whose complaint about this campaign was recorded."
    )
    started_at: datetime | None
    completed_at: datetime | None
