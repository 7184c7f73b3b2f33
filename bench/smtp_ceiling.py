"""The SMTP sink's ceiling on this machine: how many mails/s it takes from a raw client.

    python -m bench.smtp_ceiling [--mails 3000] [--connections 1 2 4] [--pipelining]

Starts the sink (`devtools.smtp_sink`, its own process, as the bench and `make up` run it)
and blasts the bulk bench's pre-rendered message at it with aiosmtplib (MAIL, RCPT, DATA per
mail, one reply awaited per command: what `BulkSession` did before pipelining) or, with
`--pipelining`, with the system's own `BulkSession`. No database, no broker, no Celery: the
bound that any batched path on this machine stays under. Reports mails/s and the CPU each
process spent per mail (from /proc), since the sink and the sender share the 2 cores.
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
from services.notifications.mailer import Mailer
from services.notifications.templates import CampaignMail

PORT = 23925 + int(os.environ.get("DOORBUSTER_TEST_SLOT", "0")) * 7


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    with open(f"/proc/{pid}/stat") as file:
        fields = file.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def blast_plain(messages: list[tuple[str, bytes]]) -> None:
    """One aiosmtplib connection, MAIL / RCPT / DATA per mail, each reply awaited."""
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=PORT, start_tls=False)
    await smtp.connect()
    for email, raw in messages:
        await smtp.mail("orders@doorbuster.test")
        await smtp.rcpt(email)
        await smtp.data(raw)
    await smtp.quit()


async def blast_session(messages: list[tuple[str, bytes]]) -> None:
    """One `BulkSession` (the bulk pool's SMTP connection), all mails through it."""
    mailer = Mailer("127.0.0.1", PORT, "Doorbuster <orders@doorbuster.test>")
    async with mailer.session() as smtp:
        results = await smtp.send_all(messages)
    assert smtp.pipelining and results == [None] * len(messages), results[-1:]


async def blast(mails: int, connections: int, pipelining: bool) -> None:
    mail = CampaignMail("ceiling", baseline.SUBJECT, baseline.BODY, "orders@doorbuster.test")
    messages = [
        (f"c{index}@example.com", mail.render(index, f"c{index}@example.com"))
        for index in range(mails)
    ]
    share = [messages[n::connections] for n in range(connections)]
    run = blast_session if pipelining else blast_plain
    await asyncio.gather(*(run(part) for part in share))


def measure(mails: int, connections: int, pipelining: bool, where: str) -> dict[str, float]:
    root = tempfile.mkdtemp(prefix="ceiling-", dir=where)
    maildir = os.path.join(root, "mail")
    sink_args = ["--port", str(PORT), "--maildir", maildir, "--log-level", "warning"]
    sink = subprocess.Popen([sys.executable, "-m", "devtools.smtp_sink", *sink_args])
    try:
        time.sleep(1.5)
        sink_cpu, own_cpu = cpu_seconds(sink.pid), cpu_seconds(os.getpid())
        started = time.monotonic()
        asyncio.run(blast(mails, connections, pipelining))
        seconds = time.monotonic() - started
        sink_cpu, own_cpu = cpu_seconds(sink.pid) - sink_cpu, cpu_seconds(os.getpid()) - own_cpu
        stored = len(os.listdir(os.path.join(maildir, "new")))
        assert stored == mails, (stored, mails)
    finally:
        sink.terminate()
        sink.wait(10)
        shutil.rmtree(root, ignore_errors=True)
    return {
        "rate": mails / seconds,
        "sink_ms": 1000 * sink_cpu / mails,
        "client_ms": 1000 * own_cpu / mails,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.smtp_ceiling", description=__doc__)
    parser.add_argument("--mails", type=int, default=3000)
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--pipelining", action="store_true", help="through BulkSession")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--maildir-in", default=str(ROOT / "var"), help="folder for the sink's Maildir (var/)"
    )
    args = parser.parse_args(argv)
    print(f"load average {os.getloadavg()[0]:.1f}, Maildir in {args.maildir_in}")
    for connections in args.connections:
        for _ in range(args.repeats):
            result = measure(args.mails, connections, args.pipelining, args.maildir_in)
            print(
                f"{connections} connection(s): {result['rate']:6.0f} mails/s, CPU per mail: "
                f"sink {result['sink_ms']:.2f} ms, client {result['client_ms']:.2f} ms",
                flush=True,
            )


if __name__ == "__main__":
    main()
