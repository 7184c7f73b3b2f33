"""Notification use cases: transactional mail, at most one per order and kind."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from tenacity import (
    AsyncRetrying,
    before_sleep_log,
    retry_if_exception,
    stop_after_delay,
    wait_exponential_jitter,
)

from services.notifications.mailer import MailDeliveryError, Mailer
from services.notifications.repository import NotificationsWork, Row
from services.notifications.templates import render_order_mail
from shared.infra.db import is_transient
from shared.infra.observability import mask_email
from shared.messages.orders import SendOrderMail

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


async def send_order_mail(uow: NotificationsWork, mailer: Mailer, mail: SendOrderMail) -> None:
    """Send one transactional mail unless it was sent already.

    The row is claimed (committed) before SMTP and marked sent after, so a redelivered task
    finds `sent` and does nothing. Only a crash between the SMTP answer and the `sent` commit
    can repeat a mail; the repeat carries the same Message-ID (and a Date of its own: the time
    that copy was made).
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
    message = mailer.order_message(mail.to, subject, body, key=f"{mail.order_id}:{mail.kind}")
    try:
        await mailer.send(message, to=mail.to)
    except MailDeliveryError as exc:
        await _record_failure(uow, mail, str(exc), final=False)
        raise
    await _mark_sent(uow, mail)
    log.info("sent %s for %s to %s", mail.kind, mail.order_id, mask_email(mail.to))


async def _mark_sent(uow: NotificationsWork, mail: SendOrderMail) -> None:
    """Record the mail as sent, waiting out a database that is away.

    The SMTP server has the mail: if this failed back to the task, its retry would find a
    stale claim and send the mail again (the fault suite's PostgreSQL restart did exactly that).
    """
    try:  # the common case, without the retry machinery's cost (a tenth of the mail task)
        await uow.mail.record_alone(mail, status="sent", last_error=None)
        return
    except Exception as error:
        if not is_transient(error):
            raise
        log.warning("recording %s for %s as sent: %r; retrying", mail.kind, mail.order_id, error)
    async for attempt in AsyncRetrying(
        retry=retry_if_exception(is_transient),
        wait=wait_exponential_jitter(initial=0.5, max=10),
        stop=stop_after_delay(RECORD_SENT_PATIENCE_SECONDS),
        before_sleep=before_sleep_log(log, logging.WARNING),
        reraise=True,
    ):
        with attempt:
            await uow.mail.record_alone(mail, status="sent", last_error=None)


async def _claim(uow: NotificationsWork, mail: SendOrderMail) -> bool:
    # The first delivery's claim is one insert, committed alone (one round trip); a repeat
    # finds the row and decides under its lock.
    if await uow.mail.claim_first(mail):
        return True
    async with uow:
        row = await uow.mail.locked(mail)
        if row["status"] == "sent":
            log.info("%s for %s was sent already", mail.kind, mail.order_id)
            return False
        if row["status"] == "sending" and row["age"] < SENDING_LEASE and row["attempts"] > 0:
            remaining = (SENDING_LEASE - row["age"]).total_seconds()
            raise MailInFlight(f"{mail.kind} for {mail.order_id} is being sent", remaining)
        await uow.mail.claim_again(row["id"])
        await uow.commit()
        return True


async def mail_failed(uow: NotificationsWork, mail: SendOrderMail, error: Exception) -> None:
    """The task's last try failed on the mail server: the mail is `failed` for good (shown by
    `GET /v1/notifications`); the task goes to the dead-letter queue."""
    if isinstance(error, MailDeliveryError):
        await _record_failure(uow, mail, str(error), final=True)


async def _record_failure(
    uow: NotificationsWork, mail: SendOrderMail, error: str, final: bool
) -> None:
    """Release the claim so a retry may send; on the last try the mail is marked failed."""
    await uow.mail.record_alone(
        mail, status="failed" if final else "retrying", last_error=error[:500]
    )


async def list_notifications(
    uow: NotificationsWork, order_id: str | None, after: str | None, limit: int
) -> list[Row]:
    """Mails whose outcome is known (`sent` or `failed`); ones still in delivery are not listed."""
    async with uow:
        return await uow.mail.known_outcomes(order_id, after, limit)
