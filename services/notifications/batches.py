"""Sending one campaign batch: ~500 addresses over its SMTP connections, chunk by chunk.

Per chunk (about 0.1 s of the pool's rate, at most `campaign_chunk_max` addresses):
1. take tokens from the pool-wide limiter and wait for them (ratelimit.py);
2. claim: insert a delivery row per address, in the statement that also checks the campaign
   is still queued or sending (so a pause or cancel stops every batch within one chunk) and
   reads each subscriber's status (an address unsubscribed since creation becomes `skipped`);
3. send the claimed mails over the batch's connections (pipelined, shared out between
   `campaign_smtp_connections`), then record them, mark the chunk's hard bounces (5xx at RCPT
   or DATA) `bounced` among the subscribers, and move the campaign's counters, in one
   transaction (deliveries.py).
A claim is never sent twice: a row left `sending` by a process that died is, after a lease,
recorded `failed` (outcome unknown) rather than sent again. Campaign mail is at most once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from services.notifications.domain import ACTIVE, chunks
from services.notifications.mailer import (
    BulkSession,
    MailDeliveryError,
    Mailer,
    MailResult,
    OutcomeUnknown,
    RecipientRefused,
)
from services.notifications.ratelimit import RateLimiter
from services.notifications.repository import NotificationsWork
from services.notifications.repository.deliveries import Batch, Recipient
from services.notifications.templates import CampaignMail
from services.notifications.unsubscribe import UnsubscribeLinks
from shared.messages.notifications import SendCampaignBatch

log = logging.getLogger(__name__)


class BatchInFlight(Exception):
    """Another delivery of this batch holds fresh claims: look again once they are recorded."""


@dataclass
class ChunkOutcome:
    sent: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)
    bounced: dict[int, str] = field(default_factory=dict)  # failed for good: suppress them
    released: list[int] = field(default_factory=list)  # claimed, not sent: free them again
    error: MailDeliveryError | None = None  # what stopped the chunk early


@dataclass(frozen=True)
class CampaignSender:
    """What sending a batch needs; built once per worker process."""

    uow: NotificationsWork
    mailer: Mailer
    limiter: RateLimiter
    chunk: int
    lease_seconds: float
    connections: int = 1
    links: UnsubscribeLinks | None = None  # one-click unsubscribe headers (RFC 8058)


async def send_campaign_batch(sender: CampaignSender, command: SendCampaignBatch) -> None:
    """Send what is left of one batch (a mail failure raises, and the task retries it)."""
    batch = await _load(sender.uow, command)
    if batch is None:
        return
    mail = CampaignMail(
        batch.campaign_id,
        batch.subject,
        batch.body,
        sender.mailer.sender,
        sender.mailer.signer,
        sender.links,
    )
    async with contextlib.AsyncExitStack() as stack:
        smtp = [
            await stack.enter_async_context(sender.mailer.session())
            for _ in range(sender.connections)
        ]
        for positions in chunks(batch.size, sender.chunk):
            if not await _send_chunk(sender, batch, mail, smtp, positions):
                log.info("campaign %s batch %d stopped", batch.campaign_id, batch.batch_no)
                return
    async with sender.uow as uow:
        open_claims = await _close(uow, batch, sender.lease_seconds)
        await uow.commit()
    if open_claims:
        raise BatchInFlight(f"{open_claims} claim(s) of {batch.campaign_id}/{batch.batch_no}")


async def _send_chunk(
    sender: CampaignSender,
    batch: Batch,
    mail: CampaignMail,
    smtp: Sequence[BulkSession],
    positions: tuple[int, int],
) -> bool:
    """One chunk; False when the campaign is no longer active (paused or cancelled)."""
    wanted = positions[1] - positions[0] + 1
    wait = await sender.limiter.acquire(wanted)
    if wait > 0:
        await asyncio.sleep(wait)
    claimed = await _claim(sender.uow, batch, positions)
    if claimed is None:
        await sender.limiter.give_back(wanted)
        return False
    await sender.limiter.give_back(wanted - len(claimed))
    outcome = await _deliver(smtp, mail, claimed)
    await _record(sender.uow, batch.campaign_id, outcome)
    if outcome.error is not None:
        raise outcome.error
    return True


async def _deliver(
    smtp: Sequence[BulkSession], mail: CampaignMail, claimed: Sequence[Recipient]
) -> ChunkOutcome:
    """Share the chunk out between the batch's connections and send over all at once; a
    connection stops at its first connection-level failure, the others finish their share."""
    shares = [claimed[index :: len(smtp)] for index in range(len(smtp))]
    results = await asyncio.gather(
        *(
            session.send_all([(p.email, mail.render(p.subscriber_id, p.email)) for p in share])
            for session, share in zip(smtp, shares, strict=True)
        )
    )
    outcome = ChunkOutcome()
    for share, share_results in zip(shares, results, strict=True):
        _sort(outcome, share, share_results)
    return outcome


def _sort(outcome: ChunkOutcome, share: Sequence[Recipient], results: list[MailResult]) -> None:
    for person, result in zip(share, results, strict=False):
        if result is None:
            outcome.sent.append(person.subscriber_id)
        elif isinstance(result, RecipientRefused) and result.bounce:
            outcome.bounced[person.subscriber_id] = str(result)
        elif isinstance(result, RecipientRefused):
            outcome.failed[person.subscriber_id] = str(result)
        elif isinstance(result, OutcomeUnknown):  # maybe accepted: never send it again
            outcome.failed[person.subscriber_id] = f"outcome unknown: {result}"
            outcome.error = result
        else:  # not sent: this one and the rest of its share go back
            outcome.released.append(person.subscriber_id)
            outcome.error = result
    outcome.released += [person.subscriber_id for person in share[len(results) :]]


async def give_up(sender: CampaignSender, command: SendCampaignBatch, error: Exception) -> None:
    """The last try failed on the mail server: record the rest of the batch failed so the
    campaign completes (with failures) instead of waiting forever; the task then goes to the
    dead-letter queue. (A batch whose claims were still in flight is left to their owner.)"""
    if not isinstance(error, MailDeliveryError):
        return
    batch = await _load(sender.uow, command)
    if batch is None:
        return
    failed = await _record_rest_failed(
        sender.uow, batch, f"gave up: {error}"[:500], sender.lease_seconds
    )
    log.error(
        "campaign %s batch %d: gave up on %d address(es): %s",
        batch.campaign_id,
        batch.batch_no,
        failed,
        error,
    )


async def _load(uow: NotificationsWork, command: SendCampaignBatch) -> Batch | None:
    """The batch, if its campaign is active and it is not done yet."""
    async with uow:
        row = await uow.deliveries.batch(command)
    if row is None:
        log.warning("no batch %d of campaign %s", command.batch, command.campaign_id)
        return None
    if row["status"] not in ACTIVE or row["batch_status"] == "done":
        return None
    return Batch(command.campaign_id, command.batch, row["size"], row["subject"], row["body"])


async def _claim(
    uow: NotificationsWork, batch: Batch, positions: tuple[int, int]
) -> list[Recipient] | None:
    """Claim the chunk's addresses not claimed before; None if the campaign is not active."""
    async with uow:
        rows = await uow.deliveries.claim(batch, positions)
        if not rows and not await uow.deliveries.is_active(batch.campaign_id):
            return None
        skipped = sum(row["status"] == "skipped" for row in rows)
        await uow.deliveries.count(batch.campaign_id, skipped=skipped, starting=positions[0] == 1)
        await uow.commit()
    return [
        Recipient(row["subscriber_id"], row["email"]) for row in rows if row["status"] == "sending"
    ]


async def _record(uow: NotificationsWork, campaign_id: str, outcome: ChunkOutcome) -> None:
    """Deliveries, bounced subscribers and counters in one transaction; only rows still
    `sending` are counted. A bounce is rare: a chunk without one costs no statement more."""
    async with uow:
        sent = await uow.deliveries.finish(campaign_id, outcome.sent, {"status": "sent"})
        failed = await uow.deliveries.finish_each(campaign_id, "failed", outcome.failed)
        bounced = await uow.deliveries.finish_each(campaign_id, "bounced", outcome.bounced)
        if outcome.bounced:  # whatever the row says: the server refused the address for good
            suppressed = await uow.subscribers.bounce(outcome.bounced)
            log.info("campaign %s: %d address(es) bounced", campaign_id, suppressed)
        if outcome.released:
            await uow.deliveries.release(campaign_id, outcome.released)
        await uow.deliveries.count(campaign_id, sent=sent, failed=failed + bounced, bounced=bounced)
        await uow.commit()


async def _close(uow: NotificationsWork, batch: Batch, lease_seconds: float) -> int:
    """Record claims older than the lease as failed (their process died mid-chunk: the mail
    may or may not have gone, and it is never sent twice), mark the batch done when every
    address has its final row; returns how many claims are still open."""
    lost = await uow.deliveries.fail_lost_claims(batch, lease_seconds)
    await uow.deliveries.count(batch.campaign_id, failed=lost)
    rows, open_claims = await uow.deliveries.claims_of(batch)
    if rows == batch.size and open_claims == 0:
        await uow.deliveries.mark_done(batch)
    return open_claims


async def _record_rest_failed(
    uow: NotificationsWork, batch: Batch, error: str, lease_seconds: float
) -> int:
    """Every address not claimed yet gets a `failed` row (`skipped` if it unsubscribed), so
    the campaign can complete; returns how many failed."""
    async with uow:
        rows = await uow.deliveries.claim_rest_failed(batch, error)
        failed = sum(row["status"] == "failed" for row in rows)
        await uow.deliveries.count(batch.campaign_id, failed=failed, skipped=len(rows) - failed)
        await _close(uow, batch, lease_seconds)
        await uow.commit()
    return failed
