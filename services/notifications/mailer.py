"""SMTP delivery with aiosmtplib: one connection per call or one per batch."""

from __future__ import annotations

import contextlib
from email.message import EmailMessage
from email.utils import parseaddr
from types import TracebackType

import aiosmtplib


class MailDeliveryError(Exception):
    """The SMTP server refused or could not be reached: retry later."""


class RecipientRefused(Exception):
    """A permanent (5xx) refusal of this one mail; the session goes on with the next."""


class OutcomeUnknown(MailDeliveryError):
    """The connection broke after the message was handed over: it may have been accepted."""


class Mailer:
    def __init__(self, host: str, port: int, sender: str, timeout: float = 10.0):
        self.host, self.port, self.sender, self.timeout = host, port, sender, timeout

    def compose(self, to: str, subject: str, body: str, key: str) -> EmailMessage:
        """A message whose Message-ID is derived from `key`: receivers can spot a repeat."""
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = to
        message["Subject"] = subject
        message["Message-ID"] = f"<{key.replace(':', '.')}@doorbuster.test>"
        message["X-Doorbuster-Key"] = key
        message.set_content(body)
        return message

    async def send(self, message: EmailMessage) -> None:
        try:
            await aiosmtplib.send(
                message, hostname=self.host, port=self.port, timeout=self.timeout, start_tls=False
            )
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise MailDeliveryError(str(exc)) from exc

    def session(self) -> BulkSession:
        """One SMTP connection for many mails (a campaign batch)."""
        return BulkSession(self.host, self.port, parseaddr(self.sender)[1], self.timeout)


class BulkSession:
    """`async with mailer.session() as smtp: await smtp.deliver(to, raw)` over one connection.

    Each mail is sent as MAIL, RCPT, DATA so that a failure says what happened: refused before
    DATA or with a code means not sent (`RecipientRefused` for 5xx, `MailDeliveryError` for
    4xx and for a connection lost before DATA); a connection lost during DATA is
    `OutcomeUnknown`, because the server may have stored the mail before its reply was lost.
    """

    def __init__(self, host: str, port: int, envelope_from: str, timeout: float):
        self._smtp = aiosmtplib.SMTP(hostname=host, port=port, timeout=timeout, start_tls=False)
        self._from = envelope_from

    async def __aenter__(self) -> BulkSession:
        try:
            await self._smtp.connect()
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise MailDeliveryError(f"cannot connect: {exc}") from exc
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with contextlib.suppress(aiosmtplib.SMTPException, OSError, TimeoutError):
            if self._smtp.is_connected:
                await self._smtp.quit()
        self._smtp.close()

    async def deliver(self, to: str, message: bytes) -> None:
        try:
            await self._smtp.mail(self._from)
            await self._smtp.rcpt(to)
        except aiosmtplib.SMTPResponseException as exc:
            await self._refused(exc)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise MailDeliveryError(f"before DATA: {exc}") from exc
        try:
            await self._smtp.data(message)
        except aiosmtplib.SMTPResponseException as exc:
            await self._refused(exc)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise OutcomeUnknown(f"during DATA: {exc}") from exc

    async def _refused(self, exc: aiosmtplib.SMTPResponseException) -> None:
        """Reset the envelope for the next mail, then say whether to retry this one later."""
        with contextlib.suppress(aiosmtplib.SMTPException, OSError, TimeoutError):
            await self._smtp.rset()
        if exc.code >= 500:
            raise RecipientRefused(f"{exc.code} {exc.message}") from exc
        raise MailDeliveryError(f"{exc.code} {exc.message}") from exc
