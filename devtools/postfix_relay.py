"""A private Postfix instance (Debian's package): a test-only relay in front of the sink.

The integration test of issue 19 item 5 (tests/integration/test_postfix_relay.py) puts it
between the bulk pool and the sink; `python -m bench.smtp_ceiling --via-postfix` measures it.

Its own config, queue and data directories under var/, listening on one loopback port and
relaying everything it accepts to `relay_port` (the sink): no local delivery, no DNS, no TLS,
and nothing of the machine's own Postfix (there is none configured: `make test` installs
the package with "No configuration" and leaves its service off). The master runs as root,
as Postfix wants; its daemons drop to the package's `postfix` user.

Configured to hand signed mail on unchanged (issue 19: the DKIM signature must verify after
the relay): no header address rewriting, no MIME conversion of 8bit bodies, no added
headers but its `Received:` on top (outside any signature's `h=`).

A test-only relay, and a slow one on this kind of machine: Postfix spends 2 to 3 ms of CPU a
mail over its processes (smtpd, cleanup, qmgr, smtp, ...; queue files fsynced on disk), more
than the sending path itself (docs/campaigns.md, "Through Postfix").
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

POSTFIX = "/usr/sbin/postfix"

# The daemons this relay needs, in master.cf form (service type private unpriv chroot
# wakeup maxproc command). No chroot: it would need copies of /etc files inside the queue.
# `smtpd` takes up to 50 connections at once (a bulk pool opens 2 per running batch).
MASTER_CF = """\
{listen}  inet  n  -  n  -  50  smtpd
pickup     unix  n  -  n  60  1  pickup
cleanup    unix  n  -  n  -   0  cleanup
qmgr       unix  n  -  n  300 1  qmgr
rewrite    unix  -  -  n  -   -  trivial-rewrite
bounce     unix  -  -  n  -   0  bounce
defer      unix  -  -  n  -   0  bounce
trace      unix  -  -  n  -   0  bounce
verify     unix  -  -  n  -   1  verify
flush      unix  n  -  n  1000? 0 flush
proxymap   unix  -  -  n  -   -  proxymap
smtp       unix  -  -  n  -   -  smtp
relay      unix  -  -  n  -   -  smtp
showq      unix  n  -  n  -   -  showq
error      unix  -  -  n  -   -  error
retry      unix  -  -  n  -   -  error
discard    unix  -  -  n  -   -  discard
anvil      unix  -  -  n  -   1  anvil
scache     unix  -  -  n  -   1  scache
postlog    unix-dgram n - n - 1  postlogd
"""


def main_cf(folder: Path, relay_port: int) -> dict[str, str]:
    """main.cf, as parameters: relay all of 127.0.0.0/8's mail to the sink, nothing else."""
    return {
        "compatibility_level": "3.6",
        "config_directory": str(folder / "etc"),
        "queue_directory": str(folder / "queue"),
        "data_directory": str(folder / "data"),
        "maillog_file": str(folder / "maillog"),  # no syslog daemon on these machines
        "maillog_file_prefixes": str(folder),
        "myhostname": "relay.doorbuster.test",
        "mydomain": "doorbuster.test",
        "myorigin": "$myhostname",
        "inet_interfaces": "127.0.0.1",
        "inet_protocols": "ipv4",
        "mynetworks": "127.0.0.0/8",
        "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
        # No local delivery: every domain is someone else's, and goes to the relay host.
        "mydestination": "",
        "local_recipient_maps": "",
        "local_transport": "error:local delivery is disabled",
        "alias_maps": "",
        "alias_database": "",
        "relayhost": f"[127.0.0.1]:{relay_port}",
        # No DNS anywhere: the relay host is an address, clients are not looked up.
        "disable_dns_lookups": "yes",
        "smtp_host_lookup": "native",
        "smtpd_peername_lookup": "no",
        # Hand the signed mail on as it came: no rewriting of From/To/... (canonical
        # rewriting re-renders address headers it touches), no 8bit -> quoted-printable
        # conversion (would change the body under bh=), no headers added for missing ones.
        "local_header_rewrite_clients": "",
        "remote_header_rewrite_domain": "",
        "append_dot_mydomain": "no",
        "disable_mime_output_conversion": "yes",
        "always_add_missing_headers": "no",
        "smtputf8_enable": "no",  # our envelopes are ASCII; no SMTPUTF8 downgrade questions
        "smtp_tls_security_level": "none",
        "smtpd_tls_security_level": "none",
        # A few cached connections to the one-process sink instead of up to 20; measured, 2
        # was no faster, nor was `in_flow_delay = 0` (docs/campaigns.md, "Through Postfix").
        "smtp_destination_concurrency_limit": "4",
        "smtp_connection_cache_on_demand": "yes",
        "smtpd_client_connection_count_limit": "0",
        "smtpd_client_event_limit_exceptions": "$mynetworks",
        # Quick retries: a deferred mail must not sit for Postfix's default minutes.
        "queue_run_delay": "1s",
        "minimal_backoff_time": "1s",
        "maximal_backoff_time": "2s",
        "biff": "no",
        "mail_owner": "postfix",
        "setgid_group": "postdrop",
    }


def unavailable() -> str | None:
    """Why a private Postfix cannot run here, or None when it can."""
    if not os.path.exists(POSTFIX):
        return "Postfix is not installed (Debian's package `postfix`; `make test` installs it)"
    if os.geteuid() != 0:
        return "Postfix's master must run as root, and these tests do not"
    return None


class PostfixRelay:
    """`relay = PostfixRelay(folder, port, relay_port); relay.start(); ...; relay.stop()`."""

    def __init__(
        self, folder: Path, port: int, relay_port: int, settings: dict[str, str] | None = None
    ):
        """`settings`: main.cf parameters over `main_cf`'s."""
        self.folder, self.port, self.relay_port = folder.resolve(), port, relay_port
        self.settings = settings or {}
        self.config = self.folder / "etc"

    @property
    def log_file(self) -> Path:
        return self.folder / "maillog"

    def start(self, timeout: float = 30) -> None:
        """A fresh instance (queue emptied), started and accepting connections."""
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)
        for sub in ("etc", "queue", "data"):
            (self.folder / sub).mkdir(parents=True)
        (self.config / "master.cf").write_text(MASTER_CF.format(listen=f"127.0.0.1:{self.port}"))
        settings = {**main_cf(self.folder, self.relay_port), **self.settings}
        (self.config / "main.cf").write_text("".join(f"{k} = {v}\n" for k, v in settings.items()))
        shutil.chown(self.folder / "data", "postfix", "postfix")
        for command in ("check", "start"):
            done = self._postfix(command)
            if done.returncode != 0:
                output = f"{done.stderr}{done.stdout}".strip()
                raise RuntimeError(f"postfix {command} failed: {output}\n{self.log_tail()}")
        deadline = time.monotonic() + timeout
        while not _listening(self.port):
            if time.monotonic() > deadline:
                raise RuntimeError(f"Postfix not listening on {self.port}: {self.log_tail()}")
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop the instance (waits for the master to exit); nothing if it is not running."""
        if (self.config / "main.cf").exists() and self._running():
            self._postfix("stop")
            deadline = time.monotonic() + 30
            while self._running() and time.monotonic() < deadline:
                time.sleep(0.1)

    def cpu_seconds(self) -> float:
        """CPU (user + system) the instance has used: its master, its live daemons, and the
        daemons that exited (reaped by the master, so in its children's times)."""
        master = int((self.folder / "queue" / "pid" / "master.pid").read_text().split()[0])
        total = _times(master, children=True)
        for entry in os.listdir("/proc"):
            if entry.isdigit() and entry != str(master):
                with contextlib.suppress(OSError, ValueError, IndexError):
                    if _parent(int(entry)) == master:
                        total += _times(int(entry), children=False)
        return total

    def queued(self) -> int:
        """Mails in the instance's queues (incoming, active, deferred, hold), from the files."""
        queue = self.folder / "queue"
        return sum(
            len(files)
            for sub in ("incoming", "active", "deferred", "hold")
            for _, _, files in os.walk(queue / sub)
        )

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_file.exists():
            return "(no maillog)"
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])

    def _running(self) -> bool:
        return self._postfix("status").returncode == 0

    def _postfix(self, command: str) -> subprocess.CompletedProcess[str]:
        argv = [POSTFIX, "-c", str(self.config), command]
        return subprocess.run(argv, capture_output=True, text=True, timeout=60)  # noqa: S603


def _stat(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as file:
        return file.read().rsplit(")", 1)[1].split()


def _parent(pid: int) -> int:
    return int(_stat(pid)[1])


def _times(pid: int, children: bool) -> float:
    """utime + stime (and, with `children`, cutime + cstime) of a process, in seconds."""
    fields = _stat(pid)
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True
