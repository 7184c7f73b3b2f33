"""The SMTP sink's ceiling on this machine: how many mails/s it takes from a raw client.

    python -m bench.smtp_ceiling [--mails 3000] [--connections 1 2 4] [--pipelining]
                                 [--via-postfix]

Starts the sink (`devtools.smtp_sink`, its own process, as the bench and `make up` run it)
and blasts the bulk bench's pre-rendered message at it with aiosmtplib (MAIL, RCPT, DATA per
mail, one reply awaited per command: what `BulkSession` did before pipelining) or, with
`--pipelining`, with the system's own `BulkSession`. No database, no broker, no Celery: the
bound that any batched path on this machine stays under. Reports mails/s and the CPU each
process spent per mail (from /proc), since the sink and the sender share the 2 cores.

`--via-postfix` puts a private Postfix (devtools/postfix_relay.py, the test-only relay of
tests/integration/test_postfix_relay.py) between the client and the sink: the rate is then
until the last mail is in the sink's Maildir, and "accepted" until Postfix took the last one.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time

import aiosmtplib

from bench import one_mail_worker as baseline
from bench.harness import ROOT
from devtools.postfix_relay import PostfixRelay, unavailable
from services.notifications.mailer import Mailer
from services.notifications.templates import CampaignMail

SLOT = int(os.environ.get("DOORBUSTER_TEST_SLOT", "0"))
SINK_PORT = 23925 + SLOT * 7
POSTFIX_PORT = 23926 + SLOT * 7
# main.cf parameters over devtools/postfix_relay.py's, `--postfix name=value` (trying settings)
POSTFIX_SETTINGS: dict[str, str] = {}


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    with open(f"/proc/{pid}/stat") as file:
        fields = file.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def blast_plain(messages: list[tuple[str, bytes]], port: int) -> None:
    """One aiosmtplib connection, MAIL / RCPT / DATA per mail, each reply awaited."""
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
    await smtp.connect()
    for email, raw in messages:
        await smtp.mail("orders@doorbuster.test")
        await smtp.rcpt(email)
        await smtp.data(raw)
    await smtp.quit()


async def blast_session(messages: list[tuple[str, bytes]], port: int) -> None:
    """One `BulkSession` (the bulk pool's SMTP connection), all mails through it."""
    mailer = Mailer("127.0.0.1", port, "Doorbuster <orders@doorbuster.test>")
    async with mailer.session() as smtp:
        results = await smtp.send_all(messages)
    assert smtp.pipelining and results == [None] * len(messages), results[-1:]


async def blast(mails: int, connections: int, pipelining: bool, port: int) -> None:
    """`mails` sent over `connections` at once to `port` (the sink, or Postfix before it)."""
    mail = CampaignMail("ceiling", baseline.SUBJECT, baseline.BODY, "orders@doorbuster.test")
    messages = [
        (f"c{index}@example.com", mail.render(index, f"c{index}@example.com"))
        for index in range(mails)
    ]
    share = [messages[n::connections] for n in range(connections)]
    run = blast_session if pipelining else blast_plain
    await asyncio.gather(*(run(part, port) for part in share))


def wait_stored(maildir: str, mails: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while (stored := len(os.listdir(os.path.join(maildir, "new")))) < mails:
        assert time.monotonic() < deadline, (stored, mails)
        time.sleep(0.02)
    assert stored == mails, (stored, mails)


def measure(
    mails: int, connections: int, pipelining: bool, where: str, via_postfix: bool = False
) -> dict[str, float]:
    root = tempfile.mkdtemp(prefix="ceiling-", dir=where)
    maildir = os.path.join(root, "mail")
    sink_args = ["--port", str(SINK_PORT), "--maildir", maildir, "--log-level", "warning"]
    sink = subprocess.Popen([sys.executable, "-m", "devtools.smtp_sink", *sink_args])
    relay = PostfixRelay(
        ROOT / "var" / f"postfix-ceiling{SLOT or ''}", POSTFIX_PORT, SINK_PORT, POSTFIX_SETTINGS
    )
    try:
        if via_postfix:
            relay.start()
        time.sleep(1.5)
        sink_cpu, own_cpu = cpu_seconds(sink.pid), cpu_seconds(os.getpid())
        relay_cpu = relay.cpu_seconds() if via_postfix else 0.0
        started = time.monotonic()
        port = POSTFIX_PORT if via_postfix else SINK_PORT
        asyncio.run(blast(mails, connections, pipelining, port))
        accepted = time.monotonic() - started
        wait_stored(maildir, mails)
        seconds = time.monotonic() - started
        sink_cpu, own_cpu = cpu_seconds(sink.pid) - sink_cpu, cpu_seconds(os.getpid()) - own_cpu
        relay_cpu = relay.cpu_seconds() - relay_cpu if via_postfix else 0.0
    finally:
        relay.stop()
        sink.terminate()
        sink.wait(10)
        shutil.rmtree(root, ignore_errors=True)
    return {
        "rate": mails / seconds,
        "accepted_rate": mails / accepted,
        "sink_ms": 1000 * sink_cpu / mails,
        "client_ms": 1000 * own_cpu / mails,
        "postfix_ms": 1000 * relay_cpu / mails,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.smtp_ceiling", description=__doc__)
    parser.add_argument("--mails", type=int, default=3000)
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--pipelining", action="store_true", help="through BulkSession")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--via-postfix", action="store_true", help="through a private Postfix to the sink"
    )
    parser.add_argument(
        "--postfix", nargs="*", default=[], metavar="NAME=VALUE", help="main.cf over the relay's"
    )
    parser.add_argument(
        "--maildir-in", default=str(ROOT / "var"), help="folder for the sink's Maildir (var/)"
    )
    args = parser.parse_args(argv)
    POSTFIX_SETTINGS.update(item.split("=", 1) for item in args.postfix)
    if args.via_postfix and (reason := unavailable()):
        parser.error(reason)
    print(f"load average {os.getloadavg()[0]:.1f}, Maildir in {args.maildir_in}")
    for connections in args.connections:
        for _ in range(args.repeats):
            result = measure(
                args.mails, connections, args.pipelining, args.maildir_in, args.via_postfix
            )
            accepted = (
                f" (accepted {result['accepted_rate']:.0f}/s; Postfix CPU per mail "
                f"{result['postfix_ms']:.2f} ms)"
                if args.via_postfix
                else ""
            )
            print(
                f"{connections} connection(s): {result['rate']:6.0f} mails/s{accepted}, CPU per "
                f"mail: sink {result['sink_ms']:.2f} ms, client {result['client_ms']:.2f} ms",
                flush=True,
            )


if __name__ == "__main__":
    main()
