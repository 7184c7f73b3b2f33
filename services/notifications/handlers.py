"""Notification use cases: transactional mail, at most one per order and kind."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import RowMapping
from tenacity import (
    AsyncRetrying,
    before_sleep_log,
    retry_if_exception,
    stop_after_delay,
    wait_exponential_jitter,
)

from services.notifications.db import notifications
from services.notifications.mailer import MailDeliveryError, Mailer
from services.notifications.templates import render_order_mail
from shared.contracts import SendOrderMail
from shared.infra.db import is_transient
from shared.infra.observability import mask_email
from shared.messaging.tasks import current_attempt
from shared.messaging.uow import UnitOfWork

log = logging.getLogger(__name__)
# A claim younger than this means another delivery of the same task may be sending right now
# (longer than the SMTP timeout, so a live sender always finishes within it).
SENDING_LEASE = timedelta(seconds=30)
# How long a sent mail waits for the database to record it (a restart or failover takes
# seconds; beyond this the task fails and its retry may repeat the mail, same Message-ID).
RECORD_SENT_PATIENCE_SECONDS = 120.0


class MailInFlight(Exception):
    """Another delivery holds a fresh claim on this mail: look again later."""

    def __init__(self, message: str, remaining: float = 0.0):
        super().__init__(message)
        self.remaining = remaining


async def send_order_mail(uow: UnitOfWork, mailer: Mailer, mail: SendOrderMail) -> None:
    """Send one transactional mail unless it was sent already.

    The row is claimed (committed) before SMTP and marked sent after, so a redelivered task
    finds `sent` and does nothing. Only a crash between the SMTP answer and the `sent` commit
    can repeat a mail; the repeat carries the same Message-ID.
    """
    try:
        claimed = await _claim(uow, mail)
    except MailInFlight as busy:
        # Most often the claim of a worker killed mid-send: wait the lease out once, then
        # take it over (a live sender has finished by then and marked the mail sent).
        await asyncio.sleep(busy.remaining + 0.5)
        claimed = await _claim(uow, mail)
    if not claimed:
        return
    subject, body = render_order_mail(mail)
    message = mailer.compose(mail.to, subject, body, key=f"{mail.order_id}:{mail.kind}")
    try:
        await mailer.send(message)
    except MailDeliveryError as exc:
        final = current_attempt().is_last
        await _record_failure(uow, mail, str(exc), final)
        raise
    await _mark_sent(uow, mail)
    log.info("sent %s for %s to %s", mail.kind, mail.order_id, mask_email(mail.to))


async def _mark_sent(uow: UnitOfWork, mail: SendOrderMail) -> None:
    """Record the mail as sent, waiting out a database that is away.

    The SMTP server has the mail: if this failed back to the task, its retry would find a
    stale claim and send the mail again (the fault suite's PostgreSQL restart did exactly that).
    """
    async for attempt in AsyncRetrying(
        retry=retry_if_exception(is_transient),
        wait=wait_exponential_jitter(initial=0.5, max=10),
        stop=stop_after_delay(RECORD_SENT_PATIENCE_SECONDS),
        before_sleep=before_sleep_log(log, logging.WARNING),
        reraise=True,
    ):
        with attempt:
            await uow.execute_alone(
                update(notifications)
                .where(
                    notifications.c.order_id == mail.order_id,
                    notifications.c.kind == mail.kind,
                )
                .values(status="sent", sent_at=func.now(), last_error=None)
            )


async def _claim(uow: UnitOfWork, mail: SendOrderMail) -> bool:
    # The first delivery's claim is one insert, committed alone (one round trip); a repeat
    # finds the row and decides under its lock.
    created = await uow.execute_alone(
        insert(notifications)
        .values(
            id=f"ntf_{uuid.uuid4().hex}",
            order_id=mail.order_id,
            kind=mail.kind,
            to=mail.to,
            status="sending",
            attempts=1,
            claimed_at=func.now(),
        )
        .on_conflict_do_nothing()
        .returning(notifications.c.id)
    )
    if created:
        return True
    async with uow:
        row = (
            (
                await uow.session.execute(
                    select(notifications, (func.now() - notifications.c.claimed_at).label("age"))
                    .where(
                        notifications.c.order_id == mail.order_id,
                        notifications.c.kind == mail.kind,
                    )
                    .with_for_update()
                )
            )
            .mappings()
            .one()
        )
        if row["status"] == "sent":
            log.info("%s for %s was sent already", mail.kind, mail.order_id)
            return False
        if row["status"] == "sending" and row["age"] < SENDING_LEASE and row["attempts"] > 0:
            remaining = (SENDING_LEASE - row["age"]).total_seconds()
            raise MailInFlight(f"{mail.kind} for {mail.order_id} is being sent", remaining)
        await uow.session.execute(
            update(notifications)
            .where(notifications.c.id == row["id"])
            .values(
                status="sending",
                claimed_at=func.now(),
                attempts=notifications.c.attempts + 1,
            )
        )
        await uow.commit()
        return True


async def _record_failure(uow: UnitOfWork, mail: SendOrderMail, error: str, final: bool) -> None:
    """Release the claim so a retry may send; on the last try the mail is marked failed."""
    await uow.execute_alone(
        update(notifications)
        .where(notifications.c.order_id == mail.order_id, notifications.c.kind == mail.kind)
        .values(status="failed" if final else "retrying", last_error=error[:500])
    )


async def list_notifications(
    uow: UnitOfWork, order_id: str | None, after: str | None, limit: int
) -> list[RowMapping]:
    """Mails whose outcome is known (`sent` or `failed`); ones still in delivery are not listed."""
    query = (
        select(notifications)
        .where(notifications.c.status.in_(("sent", "failed")))
        .order_by(notifications.c.id)
        .limit(limit)
    )
    if order_id is not None:
        query = query.where(notifications.c.order_id == order_id)
    if after is not None:
        query = query.where(notifications.c.id > after)
    async with uow:
        return list((await uow.session.execute(query)).mappings())
