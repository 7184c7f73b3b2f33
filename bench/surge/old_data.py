"""Before the load: data left by earlier runs that will slow this one, said before it starts.

A campaign goes to every subscribed address, so a database that kept the subscribers of the
test suites and earlier runs (91,852 of them once, against the 2,000 a run imports) turns the
run's campaign into a long send that competes with the shoppers for the CPU and outlasts the
settle timeout: that run took 4 min 46 s instead of about two. Messages already waiting in the
project's queues delay the run's tasks the same way. Each finding is one `warning:` line with
what it will cost and the way out, `make reset`; nothing is changed, the run goes on.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aio_pika
import asyncpg

from bench.surge.depths import QUEUES
from bench.surge.seed import SURGE_DOMAIN
from shared.infra.settings import Settings

# Warn when the campaign's audience is more than this many times what the run imports.
AUDIENCE_FACTOR = 2
# Warn when more messages than this already wait in the project's queues.
BACKLOG_LIMIT = 1_000
RESET_HINT = "`make reset` (with `make up` stopped) starts from empty databases and queues"


@dataclass(frozen=True)
class OldData:
    other_subscribers: int | None  # subscribed addresses this run does not import
    queued: int | None  # messages ready in the project's queues and their dead-letter queues


# Subscribed addresses but the run's own, `fan-<n>@surge.example.com` for n below $1 (CASE:
# PostgreSQL evaluates the cast only for addresses of that shape).
OTHER_SUBSCRIBERS = rf"""
SELECT count(*) FROM subscribers
WHERE status = 'subscribed' AND NOT CASE
    WHEN email ~ '^fan-[0-9]{{1,9}}@{SURGE_DOMAIN.replace(".", "[.]")}$'
    THEN split_part(substr(email, 5), '@', 1)::int < $1
    ELSE false
END
"""


async def measure(settings: Settings, importing: int) -> OldData:
    """What the stack holds besides the `importing` subscribers the run imports; None where
    it cannot be read (the run goes on, unwarned)."""
    return OldData(await _other_subscribers(settings, importing), await _queued(settings))


async def _other_subscribers(settings: Settings, importing: int) -> int | None:
    url = settings.service_database_url("notifications")
    try:
        connection = await asyncpg.connect(
            url.replace("postgresql+asyncpg://", "postgresql://", 1), timeout=5
        )
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return None
    try:
        return await connection.fetchval(OTHER_SUBSCRIBERS, importing)
    except asyncpg.PostgresError:
        return None
    finally:
        await connection.close()


async def _queued(settings: Settings) -> int | None:
    try:
        connection = await asyncio.wait_for(aio_pika.connect(settings.rabbitmq_url), 5)
    except (OSError, TimeoutError, aio_pika.exceptions.AMQPError):
        return None
    total = 0
    try:
        for name in QUEUES:
            channel = await connection.channel()
            try:
                queue = await channel.declare_queue(name, passive=True)
            except aio_pika.exceptions.ChannelClosed:  # not declared: nothing waits there
                continue
            total += queue.declaration_result.message_count or 0
            await channel.close()
    finally:
        await connection.close()
    return total


def warnings(old: OldData, importing: int, mail_rate: float) -> list[str]:
    """One line per finding that will slow a run importing `importing` subscribers."""
    found = []
    others = old.other_subscribers
    if others is not None and importing + others > AUDIENCE_FACTOR * max(importing, 1):
        audience = importing + others
        cost = ""
        if mail_rate > 0:
            cost = (
                f" (about {audience / mail_rate:.0f} s of sending at {mail_rate:.0f} mails/s, "
                f"not {importing / mail_rate:.0f} s)"
            )
        found.append(
            f"warning: the run's campaign will go to {audience:,} subscribed addresses, "
            f"{others:,} of them left by earlier runs or tests, not the {importing:,} this run "
            f"imports{cost}: the run will take longer than the README says and its campaign "
            f"may outlast the settle timeout; {RESET_HINT}"
        )
    if old.queued is not None and old.queued > BACKLOG_LIMIT:
        found.append(
            f"warning: {old.queued:,} messages already wait in the project's queues: the run's "
            f"tasks queue behind them; let them drain (`doorbuster queues`) or {RESET_HINT}"
        )
    return found
