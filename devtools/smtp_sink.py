"""Local SMTP sink: accepts every mail and keeps it in a Maildir that tests can read.

`python -m devtools.smtp_sink --host 127.0.0.1 --port 1025 --maildir var/mail`
(`SMTP_SINK_MAILDIR` sets the default Maildir). Any sender and recipient, no auth,
no TLS: it stands in for a mail relay on a developer machine, nothing more.

It runs as its own process because the sink is the ceiling for bulk mail here
(FACTS.md: about 950 mails/s from one connection, 321/s when run inside the sender).
Each message is written once, before the 250 reply, so a mail the sender saw
accepted is on disk. It offers PIPELINING (RFC 2920) as every production relay does, and
like them sends its replies when it has read all the commands a client sent at once
(`PipeliningSMTP`): one reply per socket write cost the sink more CPU than the mail itself
(docs/campaigns.md, "Throughput"). Reading the Maildir back (tests, the audit) is
ops/maildir.py: the audit reads whatever Maildir a relay keeps and must not depend on dev tools.

Refusals on demand, by the recipient's local part (no configuration, so they work on `make
up`'s sink and the test stack alike; docs/campaigns.md "Bounces and complaints"):
- containing `bounce-rcpt`: `550 5.1.1` to RCPT TO (user unknown, a hard bounce);
- containing `bounce-data`: `550 5.1.1` to the message's content (a server that checks its
  recipients after DATA, a hard bounce too);
- containing `block-rcpt`: `554 5.7.1` to RCPT TO (a policy refusal, as a relay that denies
  relaying answers: about the sender, not the address);
- containing `defer-once`: `451 4.2.1` to the first RCPT TO for the address in the sink's life,
  accepted from the second on (a temporary failure, as greylisting does).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import mailbox
import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("doorbuster.smtp_sink")

DEFAULT_MAILDIR = "var/mail"
MAILDIR_ENV = "SMTP_SINK_MAILDIR"
# A fixed name: aiosmtpd otherwise calls socket.getfqdn() for every connection.
SERVER_NAME = "doorbuster-smtp-sink"
MAX_MESSAGE_BYTES = 10 * 1024 * 1024
BOUNCE_AT_RCPT = "bounce-rcpt"
BOUNCE_AT_DATA = "bounce-data"
BLOCK_AT_RCPT = "block-rcpt"
DEFER_ONCE = "defer-once"


def _marked(address: str, marker: str) -> bool:
    return marker in address.rpartition("@")[0].lower()


class MaildirHandler:
    """aiosmtpd handler that stores each message as one Maildir file.

    `mailbox.Maildir` creates the folders and can read them back, but its `add`
    fsyncs every message (measured: 1.8 ms per add here, capping the sink near
    500 mails/s). A test sink needs no crash durability, so messages are written the
    Maildir way without fsync: to tmp/ under a unique name, then renamed into new/,
    so a reader never sees half a message (about 0.1 ms per mail).
    """

    def __init__(self, maildir: str | os.PathLike[str]) -> None:
        mailbox.Maildir(maildir, factory=None, create=True)
        self.path = Path(maildir).resolve()
        self._tmp = str(self.path / "tmp")
        self._new = str(self.path / "new")
        self._prefix = f"P{os.getpid()}Q"
        self._suffix = "." + socket.gethostname().replace("/", "_").replace(":", "_")
        self.received = 0
        self._deferred: set[str] = set()  # `defer-once` addresses refused once already

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        """Accept the recipient, unless its local part asks for a refusal (module docstring)."""
        if _marked(address, BOUNCE_AT_RCPT):
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        if _marked(address, BLOCK_AT_RCPT):
            return f"554 5.7.1 <{address}>: Relay access denied"
        if _marked(address, DEFER_ONCE) and address.lower() not in self._deferred:
            self._deferred.add(address.lower())
            return f"451 4.2.1 <{address}>: Mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """Store the message, then accept it (the reply means "it is on disk"); a recipient
        marked `bounce-data` has it refused, and nothing is stored."""
        refused = [a for a in envelope.rcpt_tos if _marked(a, BOUNCE_AT_DATA)]
        if refused:
            return f"550 5.1.1 <{refused[0]}>: Recipient address rejected: User unknown"
        self._deliver(with_envelope(envelope.mail_from, envelope.rcpt_tos, envelope.content))
        if log.isEnabledFor(logging.DEBUG):
            log.debug("stored mail from %s to %s", envelope.mail_from, envelope.rcpt_tos)
        return "250 2.0.0 OK: stored"

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        """aiosmtpd's EHLO lines plus PIPELINING (before the last line, `250 HELP`)."""
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    def _deliver(self, message: bytes) -> None:
        self.received += 1
        seconds, micros = divmod(time.time_ns() // 1000, 1_000_000)
        name = f"{seconds}.M{micros:06d}{self._prefix}{self.received}{self._suffix}"
        tmp_path = os.path.join(self._tmp, name)
        descriptor = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(descriptor, message)
        finally:
            os.close(descriptor)
        os.rename(tmp_path, os.path.join(self._new, name))


def with_envelope(mail_from: str, rcpt_tos: list[str], content: bytes) -> bytes:
    """Prepend `Return-Path` and `X-Original-To`, as a delivering MTA does.

    Envelope recipients are otherwise lost (a Bcc is in no header), and tests need
    them to check who a mail went to. Line ends become Unix ones, as Maildir files have.
    """
    envelope = f"Return-Path: <{mail_from}>\nX-Original-To: {', '.join(rcpt_tos)}\n"
    return envelope.encode("utf-8") + content.replace(b"\r\n", b"\n")


def pipelining_smtp() -> type[Any]:
    """aiosmtpd's SMTP session, replying the way RFC 2920 asks of a pipelining server.

    aiosmtpd writes every reply to the socket at once. A pipelining client sends MAIL, RCPT
    and DATA (and the previous message's content) in one write; this session holds the
    replies while more of the client's input is already buffered and writes them together
    when it is about to wait for input. A client that waits for each reply (smtplib,
    aiosmtplib) sees no difference: its input buffer is empty after every command.
    """
    from aiosmtpd.smtp import SMTP  # imported here: `with_envelope` is importable without it

    class PipeliningSMTP(SMTP):  # type: ignore[misc]
        _held: bytearray | None = None

        async def push(self, status: str | bytes) -> None:
            reply = status.encode("ascii") if isinstance(status, str) else status
            held = self._held if self._held is not None else bytearray()
            held += reply + b"\r\n"
            if self._reader is not None and self._reader._buffer.find(b"\n") >= 0:
                self._held = held  # another command is waiting: answer it first
                return
            self._held = None
            self._writer.write(bytes(held))
            await self._writer.drain()

    return PipeliningSMTP


async def serve(host: str, port: int, maildir: str | os.PathLike[str]) -> None:
    """Accept mail until SIGTERM or SIGINT, then stop listening and return."""
    handler = MaildirHandler(maildir)
    loop = asyncio.get_running_loop()
    session = pipelining_smtp()
    server = await loop.create_server(
        lambda: session(handler, hostname=SERVER_NAME, data_size_limit=MAX_MESSAGE_BYTES),
        host,
        port,
    )
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    log.info("SMTP sink on %s:%d, storing mail in %s", host, port, handler.path)
    await stop.wait()
    server.close()
    # Python 3.12+ waits here for open client connections; do not let one block shutdown.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(server.wait_closed(), timeout=2)
    log.info("SMTP sink stopped after %d messages", handler.received)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devtools.smtp_sink")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1025)
    parser.add_argument(
        "--maildir",
        default=os.environ.get(MAILDIR_ENV) or DEFAULT_MAILDIR,
        help=f"Maildir to store mail in (default ${MAILDIR_ENV} or {DEFAULT_MAILDIR})",
    )
    parser.add_argument("--log-level", default="info")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    level = getattr(logging, args.log_level.upper())
    logging.basicConfig(level=level, format="%(levelname)s %(name)s %(message)s")
    # aiosmtpd logs every connection and command at INFO; that would cost more than the mail.
    logging.getLogger("mail.log").setLevel(max(level, logging.WARNING))
    try:  # uvloop's C transports: the sink's socket reads and writes cost about half
        import uvloop
    except ImportError:
        asyncio.run(serve(args.host, args.port, args.maildir))
    else:
        uvloop.run(serve(args.host, args.port, args.maildir))


if __name__ == "__main__":
    main()
