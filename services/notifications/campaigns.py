"""Campaign use cases: create (snapshot the audience, fan out), read, pause, resume, cancel.

Fan-out: creating a campaign writes its audience as batches of `batch_size` subscriber ids
and emits one `notifications.send_campaign_batch` per batch through the outbox, in the same
transaction. Completion is a counter, not a chord: each chunk adds to `sent`/`failed`/`skipped`
in the transaction that records its deliveries, and the update that makes
`sent + failed + skipped == total` also sets `completed` (docs/campaigns.md says why).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from services.notifications.domain import (
    ACTIVE,
    CampaignStatus,
    cancelled,
    new_campaign_id,
    paused,
    resumed,
)
from services.notifications.lists import require_list
from services.notifications.repository import NotificationsWork, Row
from shared.messages.notifications import SendCampaignBatch


class CampaignNotFound(LookupError):
    pass


@dataclass(frozen=True)
class NewCampaign:
    subject: str
    body: str
    batch_size: int
    list_id: str | None = None  # None: every subscriber


async def create_campaign(uow: NotificationsWork, new: NewCampaign) -> Row:
    """Queue a campaign to every subscribed address (of its list, if it names one), as of now.

    The audience is fixed here, so `total` is exact; anyone unsubscribing later is skipped
    when their batch runs. An address in several lists is one subscriber: in the audience once.
    """
    campaign_id = new_campaign_id()
    async with uow:
        await require_list(uow, new.list_id)
        await uow.campaigns.add(
            campaign_id,
            subject=new.subject,
            body=new.body,
            status=CampaignStatus.QUEUED,
            total=0,
            batch_size=new.batch_size,
            list_id=new.list_id,
        )
        sizes = await uow.campaigns.snapshot_audience(campaign_id, new.batch_size, new.list_id)
        total = sum(sizes.values())
        values: dict[str, object] = {"total": total}
        if total == 0:  # nobody to mail: done at once
            values["status"] = CampaignStatus.COMPLETED
        row = await uow.campaigns.update(campaign_id, values, completes=total == 0)
        for batch_no in sorted(sizes):
            uow.emit(SendCampaignBatch(campaign_id=campaign_id, batch=batch_no))
        await uow.commit()
    return row


async def get_campaign(uow: NotificationsWork, campaign_id: str) -> Row:
    async with uow:
        row = await uow.campaigns.get(campaign_id)
    if row is None:
        raise CampaignNotFound(campaign_id)
    return row


async def pause_campaign(uow: NotificationsWork, campaign_id: str) -> Row:
    """Batches stop before their next chunk (within a second); resume picks them up again."""
    return await _move(uow, campaign_id, lambda row: paused(CampaignStatus(row["status"])))


async def cancel_campaign(uow: NotificationsWork, campaign_id: str) -> Row:
    """Batches stop before their next chunk; nothing more is sent, ever."""
    return await _move(uow, campaign_id, lambda row: cancelled(CampaignStatus(row["status"])))


async def resume_campaign(uow: NotificationsWork, campaign_id: str) -> Row:
    """Back to sending: re-emit a task for every batch not done yet.

    Tasks of the campaign still queued from before the pause may run as well: a batch run
    twice claims each address once, so the extra run only finds less to do.
    """

    def rule(row: Row) -> CampaignStatus:
        done = row["sent"] + row["failed"] + row["skipped"] >= row["total"]
        return resumed(CampaignStatus(row["status"]), row["started_at"] is not None, done)

    return await _move(uow, campaign_id, rule, reemit=True)


async def _move(
    uow: NotificationsWork,
    campaign_id: str,
    rule: Callable[[Row], CampaignStatus],
    reemit: bool = False,
) -> Row:
    async with uow:
        row = await uow.campaigns.get(campaign_id, lock=True)
        if row is None:
            raise CampaignNotFound(campaign_id)
        current, target = CampaignStatus(row["status"]), rule(row)
        if target is current:
            return row
        completes = target is CampaignStatus.COMPLETED
        row = await uow.campaigns.update(campaign_id, {"status": target}, completes=completes)
        if reemit and target in ACTIVE:
            for batch_no in await uow.campaigns.pending_batches(campaign_id):
                uow.emit(SendCampaignBatch(campaign_id=campaign_id, batch=batch_no))
        await uow.commit()
    return row
