"""`make reset`: start the local stack from empty, keeping its schema.

It empties the three databases (every table but Alembic's `alembic_version` truncated: the
schema and the migrations' record stay), the Stripe emulator's state file, the SMTP sink's
Maildir, and purges the project's queues and their dead-letter queues in the broker's vhost.

Local only. It refuses, changing nothing, when
- `DOORBUSTER_ENV=production` (or the production refusal of shared/infra/production.py would
  fire: the settings are not loadable);
- the broker or a database is not on this machine (a loopback host): a shared server is not
  this checkout's to empty;
- `make up` is running (one of its ports answers): the running emulator would write its charges
  back on exit, and the pools hold messages the purge cannot reach.
"""

from __future__ import annotations

import argparse
import asyncio
import mailbox
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from urllib.parse import urlsplit

import aio_pika
import asyncpg
from pydantic import ValidationError

from devtools.plan import Ports
from devtools.up import STRIPE_STATE_FILE, ports_from_env
from shared.infra.production import is_loopback
from shared.infra.settings import SERVICES, Settings
from shared.messaging.topology import QueueName, dead_letter_queue

ROOT = Path(__file__).resolve().parents[1]
MAILDIR = ROOT / "var" / "mail"
KEPT_TABLES = frozenset({"alembic_version"})


class Refused(Exception):
    """Why `make reset` changed nothing."""


@dataclass
class Emptied:
    rows: dict[str, int]  # database -> rows removed
    messages: dict[str, int]  # queue -> messages purged
    state_file: bool
    mails: int

    def summary(self) -> str:
        rows = ", ".join(f"{name} {count}" for name, count in self.rows.items())
        queues = sum(self.messages.values())
        state = "removed" if self.state_file else "none"
        return (
            f"==> reset: databases emptied (rows: {rows}); {queues} queued messages purged "
            f"from {len(self.messages)} queues; Stripe emulator state {state}; "
            f"{self.mails} mails removed from the sink"
        )


def refusal(settings: Settings, ports: Ports) -> str | None:
    """Why this reset must not run here, or None."""
    if settings.doorbuster_env == "production":
        return "DOORBUSTER_ENV=production: `make reset` is for a local stack only"
    hosts = {"RABBITMQ_URL": urlsplit(settings.rabbitmq_url).hostname}
    for service in SERVICES:
        url = settings.service_database_url(service).replace("+asyncpg", "")
        hosts[f"the {service} database"] = urlsplit(url).hostname
    remote = [f"{name} ({host})" for name, host in hosts.items() if not is_loopback(host)]
    if remote:
        return f"not on this machine: {', '.join(remote)}; `make reset` empties local ones only"
    running = [port.name for port in fields(Ports) if _answers(getattr(ports, port.name))]
    if running:
        names = ", ".join(f"{name} :{getattr(ports, name)}" for name in running)
        return f"the stack is running ({names} answer): stop `make up` (Ctrl-C) first"
    return None


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), 0.5):
            return True
    except OSError:
        return False


async def empty_database(url: str) -> int:
    """Truncate every table of `url`'s public schema but Alembic's; the rows that were there."""
    try:
        connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    except asyncpg.InvalidCatalogNameError:  # never migrated: nothing to empty
        return 0
    try:
        tables = [
            row["tablename"]
            for row in await connection.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
            )
            if row["tablename"] not in KEPT_TABLES
        ]
        if not tables:
            return 0
        quoted = ", ".join(f'public."{table}"' for table in tables)
        async with connection.transaction():
            # The names come from pg_tables, quoted: no input reaches this SQL.
            counts = await connection.fetch(
                " UNION ALL ".join(f'SELECT count(*) AS n FROM public."{t}"' for t in tables)  # noqa: S608
            )
            await connection.execute(f"TRUNCATE {quoted} RESTART IDENTITY CASCADE")
        return sum(row["n"] for row in counts)
    finally:
        await connection.close()


def project_queues() -> list[str]:
    return [name for queue in QueueName for name in (str(queue), dead_letter_queue(queue))]


async def purge_queues(rabbitmq_url: str) -> dict[str, int]:
    """Purge each of the project's queues that exists in the vhost; messages per queue."""
    purged = {}
    connection = await aio_pika.connect(rabbitmq_url)
    try:
        for name in project_queues():
            channel = await connection.channel()
            try:
                queue = await channel.declare_queue(name, passive=True)
            except aio_pika.exceptions.ChannelClosed:  # not declared yet: nothing queued
                continue
            result = await queue.purge()
            purged[name] = result.message_count
            await channel.close()
    finally:
        await connection.close()
    return purged


def empty_maildir(path: Path) -> int:
    if not path.exists():
        return 0
    box = mailbox.Maildir(path, factory=None, create=False)
    keys = list(box.keys())
    for key in keys:
        box.discard(key)
    for leftover in (path / "tmp").glob("*"):
        leftover.unlink(missing_ok=True)
    return len(keys)


async def empty_services(settings: Settings) -> tuple[dict[str, int], dict[str, int]]:
    rows = {}
    for service in SERVICES:
        url = settings.service_database_url(service)
        rows[url.rsplit("/", 1)[-1].split("?")[0]] = await empty_database(url)
    return rows, await purge_queues(settings.rabbitmq_url)


def reset(settings: Settings, state_file: Path, maildir: Path, ports: Ports) -> Emptied:
    reason = refusal(settings, ports)
    if reason is not None:
        raise Refused(reason)
    rows, messages = asyncio.run(empty_services(settings))
    had_state = state_file.exists()
    state_file.unlink(missing_ok=True)
    return Emptied(rows, messages, had_state, empty_maildir(maildir))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="make reset", description=__doc__.split("\n")[0])
    parser.add_argument("--state-file", type=Path, default=Path(STRIPE_STATE_FILE))
    parser.add_argument("--maildir", type=Path, default=MAILDIR)
    args = parser.parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        reasons = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        sys.exit(f"==> make reset refused: {reasons}")
    try:
        emptied = reset(settings, args.state_file, args.maildir, ports_from_env())
    except Refused as refused:
        sys.exit(f"==> make reset refused, nothing changed: {refused}")
    print(emptied.summary())


if __name__ == "__main__":
    main()
