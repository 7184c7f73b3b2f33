"""What the notifications service sends: campaign batches, to its own bulk pool."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from shared.messaging.message import Message
from shared.messaging.topology import QueueName, Route


class SendCampaignBatch(Message):
    """One slice of a campaign's audience (`campaign_batch_size` addresses, fixed at creation)."""

    name: ClassVar[str] = "notifications.send_campaign_batch"
    route: ClassVar[Route] = Route(QueueName.BULK, priority=1)

    campaign_id: str = Field(min_length=1, max_length=40)
    batch: int = Field(ge=0)
