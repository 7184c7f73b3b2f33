"""Delivery records of campaign batches: the claims, their outcomes and the counters.

A delivery row per (campaign, subscriber) is inserted as the claim, before the mail is sent:
an address with a row is never claimed again, whatever redelivered or duplicated its batch.
Rows and the campaign's counters always move in one transaction, so `sent + failed +
skipped` is exactly the number of addresses with a final row.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    Text,
    and_,
    case,
    delete,
    func,
    literal,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import RowMapping

from services.notifications.db import (
    campaign_batches,
    campaign_deliveries,
    campaigns,
    subscribers,
)
from services.notifications.domain import ACTIVE, CampaignStatus
from services.notifications.mailer import MailDeliveryError
from shared.contracts import CampaignBatch
from shared.messaging.uow import UnitOfWork

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Batch:
    campaign_id: str
    batch_no: int
    size: int
    subject: str
    body: str


@dataclass(frozen=True)
class Recipient:
    subscriber_id: int
    email: str


@dataclass
class ChunkOutcome:
    sent: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)
    released: list[int] = field(default_factory=list)  # claimed, not sent: free them again
    error: MailDeliveryError | None = None  # what stopped the chunk early


async def load_batch(uow: UnitOfWork, command: CampaignBatch) -> Batch | None:
    """The batch, if its campaign is active and it is not done yet."""
    query = (
        select(
            campaigns.c.status,
            campaigns.c.subject,
            campaigns.c.body,
            campaign_batches.c.status.label("batch_status"),
            func.cardinality(campaign_batches.c.subscriber_ids).label("size"),
        )
        .join_from(campaign_batches, campaigns, campaigns.c.id == campaign_batches.c.campaign_id)
        .where(
            campaign_batches.c.campaign_id == command.campaign_id,
            campaign_batches.c.batch_no == command.batch,
        )
    )
    async with uow:
        row = (await uow.session.execute(query)).mappings().first()
    if row is None:
        log.warning("no batch %d of campaign %s", command.batch, command.campaign_id)
        return None
    if row["status"] not in ACTIVE or row["batch_status"] == "done":
        return None
    return Batch(command.campaign_id, command.batch, row["size"], row["subject"], row["body"])


def _audience(
    batch: Batch, positions: tuple[int, int] | None, claimed_as: str, error: str | None = None
) -> Select:
    """Delivery rows for the addresses at `positions` of the batch (all of them: None).

    A subscriber who unsubscribed since the campaign was created becomes `skipped`.
    """
    ids = campaign_batches.c.subscriber_ids
    if positions is not None:
        ids = ids[positions[0] : positions[1]]
    slice_ = (
        select(func.unnest(ids).label("subscriber_id"))
        .where(
            campaign_batches.c.campaign_id == batch.campaign_id,
            campaign_batches.c.batch_no == batch.batch_no,
        )
        .subquery()
    )
    subscribed = subscribers.c.status == "subscribed"
    return select(
        literal(batch.campaign_id),
        subscribers.c.id,
        literal(batch.batch_no, Integer),
        subscribers.c.email,
        case((subscribed, claimed_as), else_="skipped"),
        case((subscribed, literal(error, Text)), else_=None),
    ).join_from(slice_, subscribers, subscribers.c.id == slice_.c.subscriber_id)


async def _insert_deliveries(uow: UnitOfWork, rows: Select) -> list[RowMapping]:
    """Insert-if-absent: the rows that come back are the ones this call claimed."""
    columns = ["campaign_id", "subscriber_id", "batch_no", "email", "status", "error"]
    statement = (
        insert(campaign_deliveries)
        .from_select(columns, rows)
        .on_conflict_do_nothing()
        .returning(
            campaign_deliveries.c.subscriber_id,
            campaign_deliveries.c.email,
            campaign_deliveries.c.status,
        )
    )
    return list((await uow.session.execute(statement)).mappings())


async def claim(
    uow: UnitOfWork, batch: Batch, positions: tuple[int, int]
) -> list[Recipient] | None:
    """Claim the chunk's addresses not claimed before; None if the campaign is not active."""
    active = (
        select(campaigns.c.id)
        .where(campaigns.c.id == batch.campaign_id, campaigns.c.status.in_(ACTIVE))
        .exists()
    )
    async with uow:
        rows = await _insert_deliveries(uow, _audience(batch, positions, "sending").where(active))
        if not rows and not await _is_active(uow, batch.campaign_id):
            return None
        skipped = sum(row["status"] == "skipped" for row in rows)
        await count(uow, batch.campaign_id, skipped=skipped, starting=positions[0] == 1)
        await uow.commit()
    return [
        Recipient(row["subscriber_id"], row["email"]) for row in rows if row["status"] == "sending"
    ]


async def _is_active(uow: UnitOfWork, campaign_id: str) -> bool:
    status = await uow.session.scalar(
        select(campaigns.c.status).where(campaigns.c.id == campaign_id)
    )
    return status in ACTIVE


async def record(uow: UnitOfWork, campaign_id: str, outcome: ChunkOutcome) -> None:
    """Deliveries and counters in one transaction; only rows still `sending` are counted."""
    async with uow:
        sent = await _finish(
            uow, campaign_id, outcome.sent, {"status": "sent", "sent_at": func.now()}
        )
        failed = 0
        for subscriber_id, error in outcome.failed.items():
            failed += await _finish(
                uow, campaign_id, [subscriber_id], {"status": "failed", "error": error[:500]}
            )
        if outcome.released:
            await uow.session.execute(
                delete(campaign_deliveries).where(_claims(campaign_id, outcome.released))
            )
        await count(uow, campaign_id, sent=sent, failed=failed)
        await uow.commit()


def _claims(campaign_id: str, subscriber_ids: Sequence[int]) -> ColumnElement[bool]:
    return and_(
        campaign_deliveries.c.campaign_id == campaign_id,
        campaign_deliveries.c.subscriber_id.in_(subscriber_ids),
        campaign_deliveries.c.status == "sending",
    )


async def _finish(
    uow: UnitOfWork, campaign_id: str, subscriber_ids: Sequence[int], values: dict[str, Any]
) -> int:
    if not subscriber_ids:
        return 0
    result = await uow.session.execute(
        update(campaign_deliveries).where(_claims(campaign_id, subscriber_ids)).values(**values)
    )
    return result.rowcount


async def count(
    uow: UnitOfWork,
    campaign_id: str,
    sent: int = 0,
    failed: int = 0,
    skipped: int = 0,
    starting: bool = False,
) -> None:
    """Move the counters; the update that reaches `total` completes the campaign."""
    moved = sent + failed + skipped
    if not moved and not starting:
        return
    c = campaigns.c
    completes = and_(c.status.in_(ACTIVE), c.sent + c.failed + c.skipped + moved >= c.total)
    values = {
        "sent": c.sent + sent,
        "failed": c.failed + failed,
        "skipped": c.skipped + skipped,
        "status": case(
            (completes, CampaignStatus.COMPLETED.value),
            (c.status == CampaignStatus.QUEUED.value, CampaignStatus.SENDING.value),
            else_=c.status,
        ),
        "started_at": func.coalesce(c.started_at, func.now()),
        "completed_at": case((completes, func.now()), else_=c.completed_at),
    }
    query = update(campaigns).where(c.id == campaign_id)
    if not moved:  # only `queued -> sending`: leave the hot row alone once it is sending
        query = query.where(c.status == CampaignStatus.QUEUED.value)
    await uow.session.execute(query.values(**values))


async def close_batch(uow: UnitOfWork, batch: Batch, lease_seconds: float) -> int:
    """Record claims older than the lease as failed (their process died mid-chunk: the mail
    may or may not have gone, and it is never sent twice), mark the batch done when every
    address has its final row; returns how many claims are still open."""
    d = campaign_deliveries.c
    mine = and_(d.campaign_id == batch.campaign_id, d.batch_no == batch.batch_no)
    expired = await uow.session.execute(
        update(campaign_deliveries)
        .where(
            mine,
            d.status == "sending",
            d.claimed_at < func.now() - timedelta(seconds=lease_seconds),
        )
        .values(status="failed", error="outcome unknown: the sending process was lost")
    )
    await count(uow, batch.campaign_id, failed=expired.rowcount)
    rows, open_claims = (
        await uow.session.execute(
            select(func.count(), func.count().filter(d.status == "sending")).where(mine)
        )
    ).one()
    if rows == batch.size and open_claims == 0:
        await uow.session.execute(
            update(campaign_batches)
            .where(
                campaign_batches.c.campaign_id == batch.campaign_id,
                campaign_batches.c.batch_no == batch.batch_no,
            )
            .values(status="done", done_at=func.now())
        )
    return open_claims


async def record_rest_failed(
    uow: UnitOfWork, batch: Batch, error: str, lease_seconds: float
) -> int:
    """Give up on a batch: every address not claimed yet gets a `failed` row (`skipped` if it
    unsubscribed), so the campaign can complete; returns how many failed."""
    async with uow:
        rows = await _insert_deliveries(uow, _audience(batch, None, "failed", error))
        failed = sum(row["status"] == "failed" for row in rows)
        await count(uow, batch.campaign_id, failed=failed, skipped=len(rows) - failed)
        await close_batch(uow, batch, lease_seconds)
        await uow.commit()
    return failed
