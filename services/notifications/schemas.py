"""HTTP models of the notifications API."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel

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
