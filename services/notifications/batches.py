"""Sending one campaign batch: ~500 addresses over its SMTP connections, chunk by chunk.

Per chunk (about 0.1 s of the pool's rate, at most `campaign_chunk_max` addresses):
1. take tokens from the pool-wide limiter and wait for them (ratelimit.py);
2. claim: insert a delivery row per address, in the statement that also checks the campaign
   is still queued or sending (so a pause or cancel stops every batch within one chunk) and
   reads each subscriber's status (an address unsubscribed since creation becomes `skipped`);
3. send the claimed mails over the batch's connections (pipelined, shared out between
   `campaign_smtp_connections`), then record them and move the
   campaign's counters in one transaction (deliveries.py).
A claim is never sent twice: a row left `sending` by a process that died is, after a lease,
recorded `failed` (outcome unknown) rather than sent again. Campaign mail is at most once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from services.notifications import deliveries
from services.notifications.deliveries import Batch, ChunkOutcome, Recipient
from services.notifications.domain import chunks
from services.notifications.mailer import (
    BulkSession,
    MailDeliveryError,
    Mailer,
    MailResult,
    OutcomeUnknown,
    RecipientRefused,
)
from services.notifications.ratelimit import RateLimiter
from services.notifications.templates import CampaignMail
from shared.contracts import CampaignBatch
from shared.messaging.tasks import current_attempt
from shared.messaging.uow import UnitOfWork

log = logging.getLogger(__name__)


class BatchInFlight(Exception):
    """Another delivery of this batch holds fresh claims: look again once they are recorded."""


@dataclass(frozen=True)
class CampaignSender:
    """What sending a batch needs; built once per worker process."""

    uow: UnitOfWork
    mailer: Mailer
    limiter: RateLimiter
    chunk: int
    lease_seconds: float
    connections: int = 1


async def send_campaign_batch(sender: CampaignSender, command: CampaignBatch) -> None:
    """Send what is left of one batch; on the last try, record the rest as failed."""
    try:
        await _send_batch(sender, command)
    except MailDeliveryError as exc:
        if current_attempt().is_last:
            await _give_up(sender, command, str(exc))
        raise


async def _send_batch(sender: CampaignSender, command: CampaignBatch) -> None:
    batch = await deliveries.load_batch(sender.uow, command)
    if batch is None:
        return
    mail = CampaignMail(batch.campaign_id, batch.subject, batch.body, sender.mailer.sender)
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
        open_claims = await deliveries.close_batch(uow, batch, sender.lease_seconds)
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
    claimed = await deliveries.claim(sender.uow, batch, positions)
    if claimed is None:
        await sender.limiter.give_back(wanted)
        return False
    await sender.limiter.give_back(wanted - len(claimed))
    outcome = await _deliver(smtp, mail, claimed)
    await deliveries.record(sender.uow, batch.campaign_id, outcome)
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
        elif isinstance(result, RecipientRefused):
            outcome.failed[person.subscriber_id] = str(result)
        elif isinstance(result, OutcomeUnknown):  # maybe accepted: never send it again
            outcome.failed[person.subscriber_id] = f"outcome unknown: {result}"
            outcome.error = result
        else:  # not sent: this one and the rest of its share go back
            outcome.released.append(person.subscriber_id)
            outcome.error = result
    outcome.released += [person.subscriber_id for person in share[len(results) :]]


async def _give_up(sender: CampaignSender, command: CampaignBatch, error: str) -> None:
    """The last try failed: record the rest of the batch failed so the campaign completes
    (with failures) instead of waiting forever; the task then goes to the dead-letter queue."""
    batch = await deliveries.load_batch(sender.uow, command)
    if batch is None:
        return
    failed = await deliveries.record_rest_failed(
        sender.uow, batch, f"gave up: {error}"[:500], sender.lease_seconds
    )
    log.error(
        "campaign %s batch %d: gave up on %d address(es): %s",
        batch.campaign_id,
        batch.batch_no,
        failed,
        error,
    )
