"""Delivery records of campaign batches: the claims, their outcomes and the counters.

A delivery row per (campaign, subscriber) is inserted as the claim, before the mail is sent:
an address with a row is never claimed again, whatever redelivered or duplicated its batch.
The use case (batches.py) moves rows and the campaign's counters in one transaction, so
`sent + failed + skipped` is exactly the number of addresses with a final row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert

from services.notifications.db import (
    campaign_batches,
    campaign_deliveries,
    campaigns,
    subscribers,
)
from services.notifications.domain import ACTIVE, CampaignStatus
from shared.messages.notifications import SendCampaignBatch
from shared.messaging.uow import UnitOfWork

Row = Mapping[str, Any]


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


class DeliveryRepository:
    def __init__(self, uow: UnitOfWork):
        self._uow = uow

    async def batch(self, command: SendCampaignBatch) -> Row | None:
        """The batch with its campaign's status, subject and body, and its size."""
        query = (
            select(
                campaigns.c.status,
                campaigns.c.subject,
                campaigns.c.body,
                campaign_batches.c.status.label("batch_status"),
                func.cardinality(campaign_batches.c.subscriber_ids).label("size"),
            )
            .join_from(
                campaign_batches, campaigns, campaigns.c.id == campaign_batches.c.campaign_id
            )
            .where(
                campaign_batches.c.campaign_id == command.campaign_id,
                campaign_batches.c.batch_no == command.batch,
            )
        )
        return (await self._uow.session.execute(query)).mappings().first()

    async def claim(self, batch: Batch, positions: tuple[int, int]) -> list[Row]:
        """Claim (`sending`) the addresses at `positions` not claimed before, if the campaign
        is active; an address unsubscribed since creation is claimed `skipped`. Returns the
        rows claimed now: subscriber_id, email, status."""
        active = (
            select(campaigns.c.id)
            .where(campaigns.c.id == batch.campaign_id, campaigns.c.status.in_(ACTIVE))
            .exists()
        )
        return await self._insert(_audience(batch, positions, "sending").where(active))

    async def claim_rest_failed(self, batch: Batch, error: str) -> list[Row]:
        """Every address of the batch not claimed yet, as `failed` (or `skipped`)."""
        return await self._insert(_audience(batch, None, "failed", error))

    async def _insert(self, rows: Select) -> list[Row]:
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
        return list((await self._uow.session.execute(statement)).mappings())

    async def is_active(self, campaign_id: str) -> bool:
        status = await self._uow.session.scalar(
            select(campaigns.c.status).where(campaigns.c.id == campaign_id)
        )
        return status in ACTIVE

    async def finish(
        self, campaign_id: str, subscriber_ids: Sequence[int], values: dict[str, Any]
    ) -> int:
        """Give claims still `sending` their outcome (`values`); returns how many moved."""
        if not subscriber_ids:
            return 0
        if values.get("status") == "sent":
            values = {**values, "sent_at": func.now()}
        result = await self._uow.session.execute(
            update(campaign_deliveries).where(_claims(campaign_id, subscriber_ids)).values(**values)
        )
        return result.rowcount

    async def finish_each(self, campaign_id: str, status: str, errors: Mapping[int, str]) -> int:
        """Give claims still `sending` this final status, each with its own error (one
        statement: the ids and errors travel as two arrays); returns how many moved."""
        if not errors:
            return 0
        result = await self._uow.session.execute(
            text(
                "UPDATE campaign_deliveries AS d SET status = :status, error = e.error"
                " FROM unnest(CAST(:ids AS bigint[]), CAST(:errors AS text[])) AS e(id, error)"
                " WHERE d.campaign_id = :campaign_id AND d.subscriber_id = e.id"
                " AND d.status = 'sending'"
            ),
            {
                "status": status,
                "ids": list(errors),
                "errors": [error[:500] for error in errors.values()],
                "campaign_id": campaign_id,
            },
        )
        return result.rowcount

    async def complaint(self, campaign_id: str, subscriber_id: int) -> bool:
        """Mark the campaign's mail to this subscriber complained about; False when it was not
        sent (or its complaint was recorded already), so a repeat is counted once."""
        d = campaign_deliveries.c
        result = await self._uow.session.execute(
            update(campaign_deliveries)
            .where(
                d.campaign_id == campaign_id,
                d.subscriber_id == subscriber_id,
                d.status == "sent",
                d.complained_at.is_(None),
            )
            .values(complained_at=func.now())
        )
        return result.rowcount > 0

    async def release(self, campaign_id: str, subscriber_ids: Sequence[int]) -> None:
        """Drop claims that were not sent, so a retry claims them again."""
        await self._uow.session.execute(
            delete(campaign_deliveries).where(_claims(campaign_id, subscriber_ids))
        )

    async def count(
        self,
        campaign_id: str,
        sent: int = 0,
        failed: int = 0,
        skipped: int = 0,
        starting: bool = False,
        bounced: int = 0,
    ) -> None:
        """Move the counters (`bounced` counts some of `failed` again); the update that
        reaches `total` completes the campaign."""
        moved = sent + failed + skipped
        if not moved and not starting:
            return
        c = campaigns.c
        completes = and_(c.status.in_(ACTIVE), c.sent + c.failed + c.skipped + moved >= c.total)
        values = {
            "sent": c.sent + sent,
            "failed": c.failed + failed,
            "skipped": c.skipped + skipped,
            "bounced": c.bounced + bounced,
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
        await self._uow.session.execute(query.values(**values))

    async def fail_lost_claims(self, batch: Batch, lease_seconds: float) -> int:
        """Claims older than the lease become `failed` (outcome unknown); returns how many."""
        d = campaign_deliveries.c
        expired = await self._uow.session.execute(
            update(campaign_deliveries)
            .where(
                _of_batch(batch),
                d.status == "sending",
                d.claimed_at < func.now() - timedelta(seconds=lease_seconds),
            )
            .values(status="failed", error="outcome unknown: the sending process was lost")
        )
        return expired.rowcount

    async def claims_of(self, batch: Batch) -> tuple[int, int]:
        """(rows, still `sending`) of the batch."""
        d = campaign_deliveries.c
        query = select(func.count(), func.count().filter(d.status == "sending")).where(
            _of_batch(batch)
        )
        rows, open_claims = (await self._uow.session.execute(query)).one()
        return rows, open_claims

    async def mark_done(self, batch: Batch) -> None:
        await self._uow.session.execute(
            update(campaign_batches)
            .where(
                campaign_batches.c.campaign_id == batch.campaign_id,
                campaign_batches.c.batch_no == batch.batch_no,
            )
            .values(status="done", done_at=func.now())
        )


def _of_batch(batch: Batch) -> ColumnElement[bool]:
    d = campaign_deliveries.c
    return and_(d.campaign_id == batch.campaign_id, d.batch_no == batch.batch_no)


def _claims(campaign_id: str, subscriber_ids: Sequence[int]) -> ColumnElement[bool]:
    return and_(
        campaign_deliveries.c.campaign_id == campaign_id,
        campaign_deliveries.c.subscriber_id.in_(subscriber_ids),
        campaign_deliveries.c.status == "sending",
    )


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
