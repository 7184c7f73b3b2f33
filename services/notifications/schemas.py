"""HTTP models of the notifications API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from services.notifications.domain import CampaignStatus, InvalidEmail, normalise_email
from shared.contracts import MailKind


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


class SubscriberImport(Strict):
    subscribers: list[SubscriberIn] = Field(min_length=1, max_length=10_000)


class ImportResult(BaseModel):
    created: int = Field(description="Addresses added by this request.")
    existing: int = Field(description="Addresses known before (or repeated in the request).")


class Subscription(BaseModel):
    email: str
    status: Literal["subscribed", "unsubscribed"]
    unsubscribed_at: datetime | None


class CampaignIn(Strict):
    subject: Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\r\n]+$")]
    body: Annotated[str, StringConstraints(min_length=1, max_length=100_000)]


class CampaignAccepted(BaseModel):
    id: str
    status: CampaignStatus
    total: int


class Campaign(CampaignAccepted):
    sent: int
    failed: int
    skipped: int = Field(description="Addresses that unsubscribed after the campaign was created.")
    started_at: datetime | None
    completed_at: datetime | None
