"""SMTP delivery: order mail over one kept connection per process, one pipelined connection
per campaign batch; both speak through `BulkSession`."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
from collections.abc import Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, parseaddr
from functools import cached_property
from types import TracebackType

from services.notifications.signing import DkimSigner
from services.notifications.smtp_security import SmtpSecurity


class MailDeliveryError(Exception):
    """The SMTP server refused or could not be reached: retry later."""


class RecipientRefused(Exception):
    """A permanent (5xx) refusal of this one mail; the session goes on with the next.

    `stage` is the command the server refused it at: `RCPT` or `DATA` (the DATA command or
    the content) mean the address will never take our mail, a bounce; `MAIL` is about the
    sender, and None is an address this client would not even put in a command.
    An enhanced status code of class 5.7 (RFC 3463: security or policy, e.g. Postfix's `554
    5.7.1 Relay access denied`, a provider's spam or reputation block) is about us, not the
    address, at any stage: no bounce, or one misconfigured relay would suppress the audience.
    """

    def __init__(self, message: str, stage: str | None = None):
        super().__init__(message)
        self.stage = stage

    @property
    def bounce(self) -> bool:
        """A hard bounce: the receiving server refused this address or its mail for good."""
        return self.stage in ("RCPT", "DATA") and _POLICY.match(str(self)) is None


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
        signer: DkimSigner | None = None,
    ):
        self.host, self.port, self.sender, self.timeout = host, port, sender, timeout
        self.security = security or SmtpSecurity()
        # DKIM: order mail is signed in send(); campaign mail by its template (templates.py).
        self.signer = signer
        # Order mail goes over one connection kept open between mails (a new one per mail was
        # six round trips more, and most of the sink's CPU: FACTS.md), one mail at a time.
        self._kept: BulkSession | None = None
        self._kept_lock: asyncio.Lock | None = None

    def order_message(
        self, to: str, subject: str, body: str, key: str, date: datetime | None = None
    ) -> bytes:
        """The mail as sent: `compose(...)` flattened, spliced by hand when every part is short
        ASCII (every order template is; building an `EmailMessage` per mail was a fifth of the
        notifications pool's CPU), through `EmailMessage` otherwise. Both give the same bytes
        (tests/unit/test_order_mail_bytes.py)."""
        if _plain(to, subject, body, key):
            lines = body.removesuffix("\n").split("\n")
            return (
                self._from_line
                + f"To: {to}\r\nSubject: {subject}\r\nDate: {mail_date(date)}\r\n"
                + _message_id_line(f"<{key.replace(':', '.')}@doorbuster.test>")
                + f"X-Doorbuster-Key: {key}\r\n"
                'Content-Type: text/plain; charset="utf-8"\r\n'
                "Content-Transfer-Encoding: 7bit\r\nMIME-Version: 1.0\r\n\r\n"
                + "".join(line + "\r\n" for line in lines)
            ).encode("ascii")
        return self.compose(to, subject, body, key, date).as_bytes(policy=SMTP)

    @cached_property
    def _from_line(self) -> str:
        """The From header as the email package renders it (once: the sender is fixed)."""
        message = EmailMessage()
        message["From"] = self.sender
        return message.as_bytes(policy=SMTP).decode("ascii").split("\r\n\r\n")[0] + "\r\n"

    def compose(
        self, to: str, subject: str, body: str, key: str, date: datetime | None = None
    ) -> EmailMessage:
        """A message whose Message-ID is derived from `key`: receivers can spot a repeat. Its
        Date is `date`, by default now: a repeat of the mail carries the time it was made again
        (RFC 5322's origination date of that copy), the Message-ID stays."""
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = to
        message["Subject"] = subject
        message["Date"] = mail_date(date)
        message["Message-ID"] = f"<{key.replace(':', '.')}@doorbuster.test>"
        message["X-Doorbuster-Key"] = key
        message.set_content(body, cte=None if body.isascii() else "quoted-printable")  # DKIM
        return message

    async def send(self, message: EmailMessage | bytes, to: str | None = None) -> None:
        """Send one mail (a message, or its bytes and their recipient) over the kept
        connection; `MailDeliveryError` if it was not taken (`OutcomeUnknown` if the
        connection broke after its content went out)."""
        if isinstance(message, EmailMessage):
            raw, to = message.as_bytes(policy=SMTP), parseaddr(message["To"])[1]
        else:
            raw = message
        assert to is not None, "bytes need their recipient"
        if self.signer is not None:
            raw = self.signer.signature_header(raw) + raw
        if self._kept_lock is None:
            self._kept_lock = asyncio.Lock()
        async with self._kept_lock:
            await self._send_kept(to, raw)

    async def _send_kept(self, to: str, raw: bytes) -> None:
        reused = self._kept is not None
        if self._kept is None:
            self._kept = await self.session().__aenter__()
        [result] = await self._kept.send_all([(to, raw)])
        if result is None:
            return
        if isinstance(result, RecipientRefused):  # 5xx for this address: the session goes on
            raise MailDeliveryError(str(result)) from result
        await self._drop_kept()
        if reused and not isinstance(result, OutcomeUnknown):
            # Not sent, on a connection kept from before: the server may have closed it while
            # idle. Once more on a new one (the mail did not go out, so it cannot go twice).
            await self._send_kept(to, raw)
            return
        raise result

    async def _drop_kept(self) -> None:
        kept, self._kept = self._kept, None
        if kept is not None:
            await kept.__aexit__(None, None, None)

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
    processes) and cannot pipeline, hence this small client; order mail uses it too, one mail
    at a time over a connection the `Mailer` keeps.

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
        failed = next(
            ((code, text, _STAGES[i]) for i, (code, text) in enumerate(replies) if code >= 400),
            None,
        )
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
            _raise_refusal(code, text, "DATA")

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
_STAGES = ("MAIL", "RCPT", "DATA")  # the envelope's commands, in `_envelope`'s order
_POLICY = re.compile(r"5\d\d[ -]5\.7\.\d{1,3}\b")  # a reply with enhanced code 5.7.x


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


def _raise_refusal(code: int, text: str, stage: str) -> None:
    """5xx: this mail is refused, the session goes on; 4xx: try again later. 530 (STARTTLS or
    AUTH required) is the session's fault, not the address's: try again later too."""
    if code >= 500 and code != 530:
        raise RecipientRefused(f"{code} {text}", stage)
    raise MailDeliveryError(f"{code} {text}")


# What `order_message` splices by hand: a plain address, one-line ASCII header values short
# enough never to be folded, ASCII body lines the email package keeps as 7bit.
_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+")
_PLAIN_TEXT = re.compile(r"[ -~]*")


def _plain(to: str, subject: str, body: str, key: str) -> bool:
    return (
        _PLAIN_ADDRESS.fullmatch(to) is not None
        and len(to) <= 60
        and _PLAIN_TEXT.fullmatch(subject) is not None
        and 0 < len(subject) <= 66
        and subject == subject.strip()
        and "  " not in subject
        and _PLAIN_TEXT.fullmatch(key) is not None
        and len(key) <= 56  # X-Doorbuster-Key: never folded
        and " " not in key
        and all(
            _PLAIN_TEXT.fullmatch(line) and len(line) <= 78 and line == line.rstrip()
            for line in body.split("\n")
        )
    )


def mail_date(when: datetime | None = None) -> str:
    """The `Date:` value (RFC 5322 3.3) of `when`, by default now, in UTC with a numeric zone:
    `Fri, 04 Dec 2026 19:25:55 +0000` (`formatdate(usegmt=True)`'s `GMT` is the obsolete zone
    syntax). Every mail has exactly one, under its DKIM signature: a relay that adds a missing
    Date adds a header the signature does not cover."""
    when = datetime.now(UTC) if when is None else when
    if when.tzinfo is None:
        raise ValueError("a mail's Date needs an aware datetime")
    return format_datetime(when.astimezone(UTC))


def _message_id_line(message_id: str) -> str:
    """As the email package folds it: a value with no space to fold at goes, whole, on a line
    of its own when the header would pass 78 characters."""
    if len("Message-ID: ") + len(message_id) > 78:
        return f"Message-ID:\r\n {message_id}\r\n"
    return f"Message-ID: {message_id}\r\n"
