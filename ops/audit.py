"""`make audit`: check the contract's five invariants, and its campaign promise (check 6: each
address of a campaign gets its mail once), across the three databases, the Stripe account (the
emulator locally), the SMTP sink where it is local, and the dead-letter queues.

Prints each invariant with its counts and exits non-zero on any violation. `--since` limits the
checks to orders and campaigns created, and messages dead-lettered, after a moment (a test
checks only what it made).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aio_pika
import asyncpg
import orjson
import stripe
from sqlalchemy.engine import make_url

from ops.maildir import count_by_header
from ops.stock import STOCK_LEDGER, refund_violations, sku_violations
from shared.infra.settings import Settings, get_settings
from shared.messages.orders import ExpireReservations, ReconcilePayments
from shared.messaging.topology import QueueName, dead_letter_queue

# Reads the local SMTP sink's mail counts by key (None: no local sink), when a check asks.
Sink = Callable[[], "Counter[str] | None"]
FINAL = ("paid", "rejected", "payment_failed", "cancelled", "refunded")
# Constant SQL fragments (no user input): orders created after `--since`, if given.
SINCE = "created_at >= coalesce($1, '-infinity'::timestamptz)"
PAID_SINCE = f"payment_intent_id IS NOT NULL AND {SINCE}"


@dataclass
class Verdict:
    name: str
    checked: int = 0
    violations: list[str] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.violations


async def _fetch(settings: Settings, service: str, query: str, *args: Any) -> list[asyncpg.Record]:
    url = make_url(settings.service_database_url(service)).set(drivername="postgresql")
    connection = await asyncpg.connect(url.render_as_string(hide_password=False))
    try:
        return await connection.fetch(query, *args)
    finally:
        await connection.close()


async def orders_final(settings: Settings, since: datetime | None) -> Verdict:
    verdict = Verdict("1. every accepted order reaches a final status")
    rows = await _fetch(
        settings,
        "orders",
        "SELECT id, status, created_at < now() - make_interval(secs => $1) AS overdue "
        "FROM orders WHERE created_at >= coalesce($2, '-infinity'::timestamptz)",
        float(settings.reservation_timeout_seconds),
        since,
    )
    verdict.checked = len(rows)
    verdict.notes = dict(Counter(row["status"] for row in rows))
    verdict.violations = [
        f"{row['id']} still {row['status']}"
        for row in rows
        if row["status"] not in FINAL and row["overdue"]
    ]
    return verdict


def _succeeded_charges(settings: Settings) -> dict[str, list[dict[str, Any]]]:
    client = stripe.StripeClient(
        settings.stripe_api_key,
        base_addresses={"api": settings.stripe_api_base},
        http_client=stripe.HTTPXClient(allow_sync_methods=True),
    )
    charges: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for intent in client.v1.payment_intents.list({"limit": 100}).auto_paging_iter():
        data = intent.to_dict()
        order_id = (data.get("metadata") or {}).get("order_id")
        if data["status"] == "succeeded" and order_id:
            charges[order_id].append(data)
    return charges


async def charges_once(settings: Settings, since: datetime | None) -> Verdict:
    verdict = Verdict("2. at most one successful charge per order; every paid order has one")
    charges = await asyncio.to_thread(_succeeded_charges, settings)
    rows = await _fetch(
        settings,
        "orders",
        f"SELECT id, status, payment_status, payment_intent_id FROM orders WHERE {SINCE}",  # noqa: S608 - constant
        since,
    )
    verdict.checked = len(rows)
    for row in rows:
        intents = charges.get(row["id"], [])
        if len(intents) > 1:
            verdict.violations.append(f"{row['id']} charged {len(intents)} times")
        if row["status"] in ("paid", "refunded") and [i["id"] for i in intents] != [
            row["payment_intent_id"]
        ]:
            verdict.violations.append(
                f"{row['id']} is {row['status']} without exactly its one charge"
            )
        if (
            row["status"] not in ("paid", "refunded")
            and intents
            and row["payment_status"] != "refunded"
        ):
            verdict.violations.append(
                f"{row['id']} is {row['status']} but charged and not refunded"
            )
    verdict.notes = {"succeeded charges": sum(len(i) for i in charges.values())}
    return verdict


async def stock_consistent(settings: Settings, since: datetime | None) -> Verdict:
    """Per sku: stock >= 0, 0 <= reserved <= stock, reserved == what open reservations hold,
    and stock + sold - returned == received (ops/stock.py); and every refunded order's units
    back (once it has been refunded longer than the reservation timeout: before that its
    return may still be queued)."""
    verdict = Verdict("3. stock adds up per sku (stock + sold - returned = received), refunds back")
    ledger = await _fetch(settings, "inventory", STOCK_LEDGER)
    verdict.checked = len(ledger)
    for row in ledger:
        verdict.violations += sku_violations(row)
    refunded = await _fetch(
        settings,
        "orders",
        "SELECT id, updated_at < now() - make_interval(secs => $1) AS overdue FROM orders "
        "WHERE status = 'refunded' AND created_at >= coalesce($2, '-infinity'::timestamptz)",
        float(settings.reservation_timeout_seconds),
        since,
    )
    settled = await _fetch(
        settings,
        "inventory",
        "SELECT order_id, status FROM reservations WHERE order_id = ANY($1::text[])",
        [row["id"] for row in refunded],
    )
    found, on_the_way = refund_violations(
        refunded, {row["order_id"]: row["status"] for row in settled}
    )
    verdict.violations += found
    committed = await _fetch(
        settings, "inventory", "SELECT order_id FROM reservations WHERE status = 'committed'"
    )
    paid = await _fetch(
        settings,
        "orders",
        f"SELECT id FROM orders WHERE status = 'paid' AND {SINCE}",  # noqa: S608 - constant
        since,
    )
    sold = {row["order_id"] for row in committed}
    unsettled = [row["id"] for row in paid if row["id"] not in sold]
    verdict.notes = {
        "paid orders whose units are not yet taken from stock": len(unsettled),
        "refunded orders whose units are on their way back": on_the_way,
    }
    return verdict


async def confirmations_once(settings: Settings, since: datetime | None, sink: Sink) -> Verdict:
    verdict = Verdict("4. every paid order has exactly one order_confirmation sent")
    paid = await _fetch(
        settings,
        "orders",
        f"SELECT id FROM orders WHERE status IN ('paid', 'refunded') AND {PAID_SINCE}",  # noqa: S608
        since,
    )
    sent = await _fetch(
        settings,
        "notifications",
        "SELECT order_id, count(*) AS n FROM notifications "
        "WHERE kind = 'order_confirmation' AND status = 'sent' GROUP BY 1",
    )
    sent_by_order = {row["order_id"]: row["n"] for row in sent}
    # Read after the records: a mail is in the sink before its row says `sent`.
    delivered = await asyncio.to_thread(sink)
    verdict.checked = len(paid)
    for row in paid:
        if sent_by_order.get(row["id"], 0) != 1:
            verdict.violations.append(
                f"{row['id']}: {sent_by_order.get(row['id'], 0)} confirmations recorded"
            )
        in_sink = None if delivered is None else delivered.get(f"{row['id']}:order_confirmation", 0)
        if in_sink not in (None, 1):
            verdict.violations.append(f"{row['id']}: {in_sink} confirmations in the sink")
    verdict.notes = {"sink checked": delivered is not None}
    return verdict


async def campaign_mail_once(settings: Settings, since: datetime | None, sink: Sink) -> Verdict:
    """Each address of a campaign gets its mail once: one delivery row per address (the
    primary key sees to that), and, where the sink is local, exactly one mail per `sent` row
    and none twice. A campaign still queued, sending or paused is in progress, not a fault.

    The sink is read after every delivery row: the sender records `sent` only once the sink
    has the mail, so a campaign still sending never looks like lost mail."""
    verdict = Verdict("6. every campaign address gets its mail once")
    campaigns = await _fetch(
        settings,
        "notifications",
        f"SELECT id, status, total, sent, failed, skipped FROM campaigns WHERE {SINCE}",  # noqa: S608 - constant
        since,
    )
    statuses: Counter[str] = Counter()
    deliveries = {
        campaign["id"]: await _fetch(
            settings,
            "notifications",
            "SELECT email, status FROM campaign_deliveries WHERE campaign_id = $1",
            campaign["id"],
        )
        for campaign in campaigns
    }
    delivered = await asyncio.to_thread(sink)
    for campaign in campaigns:
        statuses[campaign["status"]] += 1
        verdict.checked += len(deliveries[campaign["id"]])
        verdict.violations += _campaign_violations(campaign, deliveries[campaign["id"]], delivered)
    verdict.notes = {**dict(statuses), "sink checked": delivered is not None}
    return verdict


def _campaign_violations(
    campaign: asyncpg.Record, deliveries: list[asyncpg.Record], delivered: Counter[str] | None
) -> list[str]:
    cid, violations = campaign["id"], []
    counted = campaign["sent"] + campaign["failed"] + campaign["skipped"]
    if campaign["status"] == "completed" and (counted, len(deliveries)) != (
        campaign["total"],
        campaign["total"],
    ):
        violations.append(
            f"{cid} completed with {len(deliveries)} deliveries, {counted} counted, "
            f"total {campaign['total']}"
        )
    if delivered is None:
        return violations
    for row in deliveries:
        in_sink = delivered.get(f"{cid}:{row['email']}", 0)
        if in_sink > 1:
            violations.append(f"{cid}: an address got {in_sink} times")
        elif row["status"] == "sent" and in_sink == 0:
            violations.append(f"{cid}: a mail recorded sent is not in the sink")
    return violations


def _sink_counts(maildir: str | None) -> Counter[str] | None:
    if not maildir or not os.path.isdir(maildir):
        return None
    return count_by_header(maildir, "X-Doorbuster-Key")


async def dead_letters(
    settings: Settings,
    since: datetime | None = None,
    expected: set[str] | None = None,
    peek: int = 1000,
) -> Verdict:
    """Dead letters (those that died after `since`, if given) are violations unless their task
    id is `expected`; an expected one that is missing is one too. The messages are held
    unacked while they are read and put back in order when the channel closes."""
    verdict = Verdict("5. no message sits in a dead-letter queue unexplained")
    expected = set(expected or ())
    seen: set[str] = set()
    connection = await aio_pika.connect(settings.rabbitmq_url)
    try:
        channel = await connection.channel()
        for queue in QueueName:
            name = dead_letter_queue(queue)
            declared = await channel.declare_queue(name, passive=True)
            depth = declared.declaration_result.message_count or 0
            verdict.notes[name] = depth
            for _ in range(min(depth, peek)):
                message = await declared.get(no_ack=False, fail=False)
                if message is None:
                    break
                if since is not None and _died_at(message) < since:
                    continue
                verdict.checked += 1
                task_id = (message.headers or {}).get("id") or message.message_id
                if task_id in expected:
                    seen.add(str(task_id))
                elif superseded(message.headers or {}):
                    verdict.notes[SUPERSEDED] = verdict.notes.get(SUPERSEDED, 0) + 1
                else:
                    verdict.violations.append(f"{name}: {_describe(message)}")
        await channel.close()  # requeues what was read, in order
    finally:
        await connection.close()
    verdict.violations += [
        f"expected dead letter {task_id} not found" for task_id in expected - seen
    ]
    if expected:
        verdict.notes["expected"] = len(expected)
    return verdict


# Beat's periodic tasks: each run does the whole job again, so one that expired in its queue
# (the reconciliation's one-hour expiry, or a sweep from before sweeps had none) lost nothing.
PERIODIC_TASKS = frozenset({ExpireReservations.name, ReconcilePayments.name})
SUPERSEDED = "expired periodic tasks (superseded by a later run)"


def superseded(headers: dict[str, Any]) -> bool:
    """Whether a dead letter is a periodic task that died of its message expiry: explained."""
    deaths = headers.get("x-death") or [{}]
    reason = deaths[0].get("reason") if isinstance(deaths[0], dict) else None
    return headers.get("task") in PERIODIC_TASKS and reason == "expired"


def _died_at(message: aio_pika.abc.AbstractIncomingMessage) -> datetime:
    deaths = (message.headers or {}).get("x-death") or [{}]
    died = deaths[0].get("time") if isinstance(deaths[0], dict) else None
    if isinstance(died, datetime):
        return died if died.tzinfo else died.replace(tzinfo=UTC)
    return datetime.max.replace(tzinfo=UTC)  # unknown: never filtered out


def _describe(message: aio_pika.abc.AbstractIncomingMessage) -> str:
    headers = message.headers or {}
    deaths = headers.get("x-death") or [{}]
    reason = deaths[0].get("reason", "?") if isinstance(deaths[0], dict) else "?"
    task = headers.get("task", "?")
    try:
        kwargs = orjson.loads(message.body)[1]
        order = kwargs.get("order_id", "") if isinstance(kwargs, dict) else ""
    except (orjson.JSONDecodeError, IndexError, TypeError):
        order = "(body not JSON)"
    return f"task {task} {order} dead-lettered ({reason})".replace("  ", " ")


async def run_audit(
    settings: Settings,
    since: datetime | None,
    maildir: str | None,
    expected_dead_letters: set[str] | None = None,
) -> list[Verdict]:
    """Every check; with `since`, only what was created (or dead-lettered) after it."""

    def delivered() -> Counter[str] | None:
        return _sink_counts(maildir)

    checks = [
        ("1. every accepted order reaches a final status", orders_final(settings, since)),
        ("2. at most one successful charge per order", charges_once(settings, since)),
        ("3. stock is consistent", stock_consistent(settings, since)),
        ("4. one confirmation per paid order", confirmations_once(settings, since, delivered)),
        (
            "5. no unexplained dead letters",
            dead_letters(settings, since, expected_dead_letters),
        ),
        ("6. each campaign address mailed once", campaign_mail_once(settings, since, delivered)),
    ]
    verdicts = []
    for name, check in checks:
        try:
            verdicts.append(await check)
        except Exception as exc:  # noqa: BLE001 - an unreachable source is a failed check
            verdicts.append(Verdict(name, violations=[f"could not check: {exc!r}"[:300]]))
    return verdicts


def render(verdicts: list[Verdict]) -> str:
    lines = []
    for verdict in verdicts:
        mark = "OK  " if verdict.ok else "FAIL"
        notes = ", ".join(f"{key}: {value}" for key, value in verdict.notes.items())
        lines.append(f"[{mark}] {verdict.name} (checked {verdict.checked}; {notes})")
        lines.extend(f"         - {violation}" for violation in verdict.violations[:20])
        if len(verdict.violations) > 20:
            lines.append(f"         ... and {len(verdict.violations) - 20} more")
    failed = sum(not verdict.ok for verdict in verdicts)
    lines.append(
        "verdict: " + ("all invariants hold" if not failed else f"{failed} invariant(s) violated")
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make audit", description=__doc__)
    parser.add_argument(
        "--since", type=datetime.fromisoformat, help="only orders created after this"
    )
    parser.add_argument(
        "--maildir", help="the local SMTP sink's Maildir (default var/mail when the sink is local)"
    )
    args = parser.parse_args(argv)
    settings = get_settings()
    maildir = args.maildir or (None if os.environ.get("SMTP_HOST") else "var/mail")
    verdicts = asyncio.run(run_audit(settings, args.since, maildir))
    print(render(verdicts))
    return 0 if all(verdict.ok for verdict in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
