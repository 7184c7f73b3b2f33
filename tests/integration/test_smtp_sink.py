"""The SMTP sink as its own process: mail sent with smtplib is readable from its Maildir."""

from __future__ import annotations

import os
import signal
import smtplib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from ops.maildir import count_by_header, read_messages
from services.notifications.mailer import BulkSession, MailDeliveryError, RecipientRefused

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_sink(port: int, maildir: Path, timeout: float = 10.0) -> subprocess.Popen[bytes]:
    """Start `python -m devtools.smtp_sink` and wait until it accepts connections."""
    process = subprocess.Popen(
        [sys.executable, "-m", "devtools.smtp_sink", "--port", str(port)],
        cwd=ROOT,
        env={**os.environ, "SMTP_SINK_MAILDIR": str(maildir)},
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"SMTP sink exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("SMTP sink did not start listening")


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    port, maildir = free_port(), tmp_path / "mail"
    process = start_sink(port, maildir)
    yield port, maildir
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=5) == 0


def mail(to: str, subject: str, **headers: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "shop@doorbuster.test"
    message["To"] = to
    message["Subject"] = subject
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(f"Hello {to}")
    return message


def test_mails_are_stored_and_readable(sink: tuple[int, Path]) -> None:
    port, maildir = sink
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        smtp.send_message(mail("ann@example.com", "Order confirmed", X_Doorbuster_Key="o-1"))
        smtp.send_message(mail("bob@example.com", "Payment failed"))
        smtp.send_message(
            mail("cy@example.com", "Order confirmed"),
            to_addrs=["cy@example.com", "bcc@example.com"],
        )
    messages = read_messages(maildir)
    assert [m["Subject"] for m in messages] == [
        "Order confirmed",
        "Payment failed",
        "Order confirmed",
    ]
    assert [m["To"] for m in messages] == ["ann@example.com", "bob@example.com", "cy@example.com"]
    assert messages[2]["X-Original-To"] == "cy@example.com, bcc@example.com"
    assert messages[0]["X-Doorbuster-Key"] == "o-1"
    assert messages[0].get_content().strip() == "Hello ann@example.com"
    assert count_by_header(maildir, "X-Doorbuster-Key") == {"o-1": 1}
    assert count_by_header(maildir, "Subject") == {"Order confirmed": 2, "Payment failed": 1}


def test_five_hundred_mails_over_one_connection(sink: tuple[int, Path]) -> None:
    port, maildir = sink
    rendered = [
        mail(f"user{i}@example.com", "Doorbuster deals", X_Doorbuster_Key=f"c-1:{i}").as_bytes()
        for i in range(500)
    ]
    started = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        for i, message in enumerate(rendered):
            smtp.sendmail("shop@doorbuster.test", [f"user{i}@example.com"], message)
    elapsed = time.perf_counter() - started
    print(f"\nSMTP sink: 500 mails over one connection in {elapsed:.2f} s = {500 / elapsed:.0f}/s")
    keys = count_by_header(maildir, "X-Doorbuster-Key")
    assert len(keys) == 500
    assert set(keys.values()) == {1}


def test_read_helpers_on_a_missing_maildir(tmp_path: Path) -> None:
    assert read_messages(tmp_path / "none") == []
    assert count_by_header(tmp_path / "none", "X-Doorbuster-Key") == {}


async def test_the_pipelined_client_tells_a_bounce_from_a_deferral(sink: tuple[int, Path]) -> None:
    """The sink's refusals on demand, through `BulkSession` as a campaign batch sends: a 5xx to
    RCPT or to the content is a bounce of that address and the session goes on; a 5.7 policy
    refusal fails the mail but is no bounce; a 4xx stops the session (the batch is retried) and
    the address is taken on the next try."""
    port, maildir = sink
    people = [
        "ann@example.com",
        "bob.bounce-rcpt@example.com",
        "cy.bounce-data@example.com",
        "dan.block-rcpt@example.com",
        "dee@example.com",
        "eve.defer-once@example.com",
        "fay@example.com",
    ]
    mails = [(to, mail(to, "Deals", X_Doorbuster_Key=f"c-2:{to}").as_bytes()) for to in people]
    async with BulkSession("127.0.0.1", port, "shop@doorbuster.test", 5.0) as smtp:
        assert smtp.pipelining
        results = await smtp.send_all(mails)
    ok, rcpt, data, blocked, ok2, deferred = results  # the deferral stopped it before fay
    assert ok is None and ok2 is None
    assert isinstance(rcpt, RecipientRefused) and rcpt.stage == "RCPT" and rcpt.bounce
    assert str(rcpt).startswith("550 5.1.1")
    assert isinstance(data, RecipientRefused) and data.stage == "DATA" and data.bounce
    assert isinstance(blocked, RecipientRefused) and blocked.stage == "RCPT"
    assert str(blocked).startswith("554 5.7.1") and not blocked.bounce
    assert isinstance(deferred, MailDeliveryError) and str(deferred).startswith("451")
    async with BulkSession("127.0.0.1", port, "shop@doorbuster.test", 5.0) as smtp:
        assert await smtp.send_all(mails[5:]) == [None, None]
    assert set(count_by_header(maildir, "X-Doorbuster-Key")) == {
        f"c-2:{to}" for to in ("ann@example.com", "dee@example.com", *people[5:])
    }
