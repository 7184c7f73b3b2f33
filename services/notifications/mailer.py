"""SMTP delivery: one aiosmtplib connection per order mail, one pipelined connection per
campaign batch."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import parseaddr
from types import TracebackType

import aiosmtplib

from services.notifications.smtp_security import SmtpSecurity


class MailDeliveryError(Exception):
    """The SMTP server refused or could not be reached: retry later."""


class RecipientRefused(Exception):
    """A permanent (5xx) refusal of this one mail; the session goes on with the next."""


class OutcomeUnknown(MailDeliveryError):
    """The connection broke after the message was handed over: it may have been accepted."""


# What happened to one mail of a bulk session: None = accepted.
MailResult = RecipientRefused | MailDeliveryError | None


class Mailer:
    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        timeout: float = 10.0,
        security: SmtpSecurity | None = None,
    ):
        self.host, self.port, self.sender, self.timeout = host, port, sender, timeout
        self.security = security or SmtpSecurity()

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
                message,
                hostname=self.host,
                port=self.port,
                timeout=self.timeout,
                **self.security.aiosmtplib_options(),
            )
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise MailDeliveryError(str(exc)) from exc

    def session(self) -> BulkSession:
        """One SMTP connection for many mails (a campaign batch)."""
        return BulkSession(
            self.host, self.port, parseaddr(self.sender)[1], self.timeout, self.security
        )


class BulkSession:
    """`async with mailer.session() as smtp: results = await smtp.send_all(mails)`: many mails
    over one connection, pipelined (RFC 2920) when the server offers it, as relays do.

    Pipelined, a mail costs one round trip: its content goes in one write with the next
    mail's MAIL, RCPT and DATA, and the replies to all four come back together. aiosmtplib
    awaits every reply (MAIL, RCPT, DATA, content: four round trips a mail, each waking both
    processes) and cannot pipeline, hence this small client; order mail keeps aiosmtplib.

    Each reply still says what happened to its mail: a refusal with a code before the content
    was sent means not sent (`RecipientRefused` for 5xx, `MailDeliveryError` for 4xx), as
    does a connection lost before the content went out; a connection lost after it is
    `OutcomeUnknown`, because the server may have stored the mail before its reply was lost.
    """

    def __init__(
        self,
        host: str,
        port: int,
        envelope_from: str,
        timeout: float,
        security: SmtpSecurity | None = None,
    ):
        self._host, self._port, self._timeout = host, port, timeout
        self._security = security or SmtpSecurity()
        self._mail_from = f"MAIL FROM:<{envelope_from}>\r\n".encode("ascii")
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self.pipelining = False
        self._idle = False  # between transactions: QUIT may be sent

    async def __aenter__(self) -> BulkSession:
        try:
            async with asyncio.timeout(self._timeout):
                self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
            await self._expect(220)
            code, text = await self._hello()
            if self._security.starttls:
                code, text = await self._start_tls()
            if (auth := self._security.auth_plain_command()) is not None:
                self._writer.write(auth)
                await self._expect(235)
            self.pipelining = code == 250 and "PIPELINING" in text.upper().split("\n")
        except _BROKEN as exc:
            self._close()
            raise MailDeliveryError(f"cannot connect: {exc}") from exc
        self._idle = True
        return self

    async def _hello(self) -> tuple[int, str]:
        """EHLO (HELO for an old server); the EHLO reply lists the extensions."""
        assert self._writer is not None
        self._writer.write(f"EHLO {_LOCAL_NAME}\r\n".encode("ascii"))
        code, text = await self._reply()
        if code != 250:
            self._writer.write(f"HELO {_LOCAL_NAME}\r\n".encode("ascii"))
            await self._expect(250)
        return code, text

    async def _start_tls(self) -> tuple[int, str]:
        """STARTTLS (RFC 3207), then EHLO again: the extensions may differ under TLS."""
        assert self._writer is not None
        self._writer.write(b"STARTTLS\r\n")
        await self._expect(220)
        async with asyncio.timeout(self._timeout):
            await self._writer.start_tls(self._security.tls_context, server_hostname=self._host)
        return await self._hello()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._idle and self._writer is not None:
            with contextlib.suppress(*_BROKEN):
                self._writer.write(b"QUIT\r\n")
                await self._reply()
        self._close()

    async def send_all(self, mails: Sequence[tuple[str, bytes]]) -> list[MailResult]:
        """Send `(recipient, message)` in order; one result per mail tried: None (accepted),
        `RecipientRefused` (and the session went on), or last the `MailDeliveryError` that
        stopped the session (mails after it were not sent)."""
        envelopes = [_envelope(self._mail_from, to) for to, _ in mails]
        results: list[MailResult] = []
        announced = False  # this mail's envelope went out with the previous mail's content
        for index, (to, message) in enumerate(mails):
            envelope = envelopes[index]
            following = envelopes[index + 1] if index + 1 < len(mails) else None
            ahead = following if self.pipelining else None
            was_announced, announced = announced, False
            try:
                if envelope is None:
                    raise RecipientRefused(f"invalid address {to!r}")
                await self._open(envelope, was_announced)
                announced = ahead is not None  # written with the content, whatever its reply
                await self._content(message, ahead)
            except RecipientRefused as exc:
                results.append(exc)
                continue
            except MailDeliveryError as exc:
                results.append(exc)
                return results
            results.append(None)
        return results

    async def _open(self, envelope: list[bytes], announced: bool) -> None:
        """MAIL, RCPT, DATA up to the server's 354 (already written when `announced`)."""
        self._idle = False
        if self.pipelining and not announced:
            self._write(b"".join(envelope))
        replies = []
        for command in envelope:
            if not self.pipelining:
                self._write(command)
            try:
                replies.append(await self._reply())
            except _BROKEN as exc:
                raise MailDeliveryError(f"before DATA: {exc}") from exc
            if not self.pipelining and replies[-1][0] >= 400:
                break
        failed = next(((code, text) for code, text in replies if code >= 400), None)
        if failed is None:
            if replies[-1][0] != 354:
                raise MailDeliveryError(f"unexpected reply to DATA: {replies[-1][0]}")
            return
        if replies[-1][0] == 354:  # a server that let DATA through anyway: send no content
            self._write(b".\r\n")
            await self._reply_before_data()
        self._write(b"RSET\r\n")
        await self._reply_before_data()
        self._idle = True
        _raise_refusal(*failed)

    async def _content(self, message: bytes, ahead: list[bytes] | None) -> None:
        """The message and its end, with the next mail's envelope (`ahead`) in the same write."""
        self._write(_dot_stuffed(message) + b".\r\n" + b"".join(ahead or ()))
        try:
            code, text = await self._reply()
        except _BROKEN as exc:
            raise OutcomeUnknown(f"during DATA: {exc}") from exc
        self._idle = ahead is None
        if code >= 400:
            _raise_refusal(code, text)

    async def _reply_before_data(self) -> None:
        try:
            await self._reply()
        except _BROKEN as exc:
            raise MailDeliveryError(f"before DATA: {exc}") from exc

    def _write(self, data: bytes) -> None:
        if self._writer is None or self._writer.is_closing():
            raise MailDeliveryError("connection lost")
        self._writer.write(data)

    async def _reply(self) -> tuple[int, str]:
        """One (possibly multi-line) reply: its code and text, lines joined by newlines."""
        assert self._reader is not None
        lines = []
        async with asyncio.timeout(self._timeout):
            while True:
                line = await self._reader.readuntil(b"\n")
                lines.append(line[4:].strip().decode("ascii", "replace"))
                if line[3:4] != b"-":
                    return int(line[:3]), "\n".join(lines)

    async def _expect(self, code: int) -> None:
        got, text = await self._reply()
        if got != code:
            raise ConnectionError(f"{got} {text}")

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


# Errors that mean the connection (not a mail) failed; ValueError: an unparseable reply.
_BROKEN = (OSError, EOFError, TimeoutError, asyncio.LimitOverrunError, ValueError)
_LOCAL_NAME = socket.gethostname().split(".")[0] or "doorbuster"
_LEADING_DOT = re.compile(rb"^\.", re.MULTILINE)


def _envelope(mail_from: bytes, to: str) -> list[bytes] | None:
    """MAIL, RCPT, DATA for a normalised address; None if it could break the command."""
    if not to.isascii() or any(c in to for c in "\r\n<> "):
        return None
    return [mail_from, f"RCPT TO:<{to}>\r\n".encode("ascii"), b"DATA\r\n"]


def _dot_stuffed(message: bytes) -> bytes:
    """CRLF line ends, a dot doubled at the start of a line (RFC 5321 4.5.2), a final CRLF."""
    if b"\n" in message.replace(b"\r\n", b""):
        message = message.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if not message.endswith(b"\r\n"):
        message += b"\r\n"
    return _LEADING_DOT.sub(b"..", message)


def _raise_refusal(code: int, text: str) -> None:
    """5xx: this mail is refused, the session goes on; 4xx: try again later. 530 (STARTTLS or
    AUTH required) is the session's fault, not the address's: try again later too."""
    if code >= 500 and code != 530:
        raise RecipientRefused(f"{code} {text}")
    raise MailDeliveryError(f"{code} {text}")
