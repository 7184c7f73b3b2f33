"""SMTP delivery with aiosmtplib: one connection per call or one per batch."""

from __future__ import annotations

from email.message import EmailMessage

import aiosmtplib


class MailDeliveryError(Exception):
    """The SMTP server refused or could not be reached: retry later."""


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
