"""`doorbuster`: watch queues and pools, scale pools (by hand or `autoscale`), pause
campaigns, redrive dead letters, reconcile the orders with the payment provider, print the
DKIM record to publish.

Reads the same settings as the services (RABBITMQ_URL, RABBITMQ_MANAGEMENT_URL,
NOTIFICATIONS_API_URL, OPS_ADMIN_KEY or ADMIN_API_KEYS). Every listing takes `--json`.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Annotated

import aio_pika
import httpx
import typer
from celery import Celery

from ops import campaigns, dlq, pools, queues
from ops.rabbit import Management, vhost_of
from ops.render import emit
from shared.infra.dkim_key import DkimKeyError, dns_record, load_key, read_key, signing_domain
from shared.infra.settings import get_settings
from workers.pools import Pool

app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False)
pool_app = typer.Typer(help="Grow or shrink a pool's workers (Celery remote control).")
campaign_app = typer.Typer(help="Pause or resume a campaign (notifications API).")
dlq_app = typer.Typer(help="List, inspect and redrive dead-lettered messages.")
app.add_typer(pool_app, name="pool")
app.add_typer(campaign_app, name="campaign")
app.add_typer(dlq_app, name="dlq")

Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
Timeout = Annotated[float, typer.Option(help="Seconds to wait for the workers' replies.")]


def management() -> Management:
    settings = get_settings()
    return Management(settings.rabbitmq_management_url, vhost_of(settings.rabbitmq_url))


def fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


def unreachable(exc: Exception) -> typer.Exit:
    url = get_settings().rabbitmq_management_url.rsplit("@", 1)[-1]
    return fail(f"RabbitMQ management API ({url}): {exc}")


@app.command("queues")
def show_queues(as_json: Json = False) -> None:
    """Per queue: ready, unacked, dead letters, publish/deliver rates, consumers, oldest age."""
    try:
        with management() as api:
            rows = [row.as_dict() for row in queues.queue_rows(api)]
    except httpx.HTTPError as exc:
        raise unreachable(exc) from exc
    emit(rows, as_json, queues.COLUMNS)


def celery_app() -> Celery:
    # Imported late: it loads every task module, which `queues` and `dlq` do not need.
    from workers.app import flower_app

    return flower_app()


@app.command("pools")
def show_pools(as_json: Json = False, timeout: Timeout = 1.0) -> None:
    """Per pool: workers answering, total concurrency, tasks running now."""
    rows = [row.as_dict() for row in pools.pool_rows(celery_app(), timeout)]
    emit(rows, as_json, pools.COLUMNS)


def _resize(pool: Pool, delta: int, timeout: float) -> None:
    replies = pools.resize(celery_app(), pool, delta, timeout)
    if not replies:
        raise fail(f"no worker of pool {pool.value} answered")
    for node, answer in sorted(replies.items()):
        typer.echo(f"{node}: {answer.get('ok') or answer.get('error') or answer}")
    if any("error" in answer for answer in replies.values()):
        raise typer.Exit(1)


@pool_app.command("grow")
def grow(pool: Pool, n: Annotated[int, typer.Argument(min=1)] = 1, timeout: Timeout = 1.0) -> None:
    """Add N threads/processes to every worker of POOL."""
    _resize(pool, n, timeout)


@pool_app.command("shrink")
def shrink(
    pool: Pool, n: Annotated[int, typer.Argument(min=1)] = 1, timeout: Timeout = 1.0
) -> None:
    """Remove N threads/processes from every worker of POOL (never below one)."""
    _resize(pool, -n, timeout)


def _campaign(campaign_id: str, action: str, as_json: bool) -> None:
    try:
        campaign = campaigns.campaign_action(get_settings(), campaign_id, action)
    except campaigns.CampaignError as exc:
        raise fail(str(exc)) from exc
    if as_json:
        emit(campaign, True)
    else:
        typer.echo(f"campaign {campaign.get('id', campaign_id)}: {campaign.get('status', action)}")


@campaign_app.command("pause")
def pause(campaign_id: str, as_json: Json = False) -> None:
    """Stop sending a campaign's remaining batches (resumable)."""
    _campaign(campaign_id, "pause", as_json)


@campaign_app.command("resume")
def resume(campaign_id: str, as_json: Json = False) -> None:
    """Send a paused campaign's remaining batches."""
    _campaign(campaign_id, "resume", as_json)


@app.command("dkim-record")
def dkim_record(as_json: Json = False) -> None:
    """The DNS TXT record that publishes the DKIM key (DKIM_PRIVATE_KEY_FILE or
    DKIM_PRIVATE_KEY, DKIM_SELECTOR, DKIM_DOMAIN or MAIL_FROM's domain)."""
    settings = get_settings()
    try:
        if settings.dkim_private_key_file:
            key = read_key(settings.dkim_private_key_file)
        elif settings.dkim_private_key:
            key = load_key(settings.dkim_private_key)
        else:
            raise fail("no DKIM key configured (DKIM_PRIVATE_KEY_FILE or DKIM_PRIVATE_KEY)")
    except DkimKeyError as exc:
        raise fail(f"DKIM key: {exc}") from exc
    domain = signing_domain(settings.dkim_domain, settings.mail_from)
    if as_json:
        name = f"{settings.dkim_selector}._domainkey.{domain}"
        emit({"name": name, "type": "TXT", "value": key.txt_value(), "key": key.kind}, True)
    else:
        typer.echo(dns_record(key, settings.dkim_selector, domain))


QueueArg = Annotated[str, typer.Argument(help="A task queue (payments) or its DLQ (payments.dlq)")]


def _letters(queue: str, limit: int) -> list[dlq.DeadLetter]:
    try:
        dlq.dlq_name(queue)
    except ValueError as exc:
        raise fail(f"unknown queue {queue!r}") from exc
    try:
        with management() as api:
            return dlq.list_dead_letters(api, queue, limit)
    except httpx.HTTPError as exc:
        raise unreachable(exc) from exc


@dlq_app.command("list")
def dlq_list(queue: QueueArg, limit: int = 50, as_json: Json = False) -> None:
    """Dead letters of QUEUE with why they died (x-death reason), oldest first."""
    letters = _letters(queue, limit)
    if not letters and not as_json:
        typer.echo(f"no dead letters in {dlq.dlq_name(queue)}")
        return
    emit([letter.summary() for letter in letters], as_json, dlq.COLUMNS)


@dlq_app.command("show")
def dlq_show(
    queue: QueueArg,
    key: Annotated[str, typer.Argument(help="task id, or position from `dlq list`")],
    limit: int = 500,
    as_json: Json = False,
) -> None:
    """One dead letter in full: headers, x-death history, properties, body."""
    letter = dlq.find(_letters(queue, limit), key)
    if letter is None:
        raise fail(f"no dead letter {key!r} among the first {limit} of {queue}")
    if as_json:
        emit(letter.as_dict(), True)
        return
    emit([letter.summary()], False, dlq.COLUMNS)
    for part in ("headers", "properties", "body"):
        typer.echo(f"\n{part}:")
        emit(getattr(letter, part), True)


@dlq_app.command("redrive")
def dlq_redrive(
    queue: QueueArg,
    task_id: Annotated[str | None, typer.Option("--id", help="only this task id")] = None,
    limit: Annotated[int | None, typer.Option(help="at most this many")] = None,
    as_json: Json = False,
) -> None:
    """Move dead letters back to their original queue, each confirmed before it is acked."""
    try:
        dlq.dlq_name(queue)
    except ValueError as exc:
        raise fail(f"unknown queue {queue!r}") from exc
    try:
        moved = asyncio.run(dlq.redrive(get_settings().rabbitmq_url, queue, limit, task_id))
    except (OSError, aio_pika.exceptions.AMQPError) as exc:
        raise fail(f"broker: {exc}") from exc
    if task_id and not moved:
        raise fail(f"no dead letter with task id {task_id} in {dlq.dlq_name(queue)}")
    rows = [{"task": m.task, "task_id": m.task_id, "to_queue": m.routing_key} for m in moved]
    if as_json:
        emit(rows, True)
    else:
        typer.echo(f"redrove {len(moved)} message(s)")
        if rows:
            emit(rows, False, ("task", "task_id", "to_queue"))


@app.command("reconcile")
def reconcile_payments(
    since: Annotated[
        str | None,
        typer.Option(help="intents created since (ISO); default RECONCILE_LOOKBACK_SECONDS ago"),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="report only, change nothing")] = False,
    as_json: Json = False,
) -> None:
    """Compare the orders with the provider's PaymentIntents (by metadata.order_id): settle or
    refund money taken for unpaid orders, refund second charges, report paid orders without
    a charge. Exits 1 while a discrepancy remains."""
    from ops import reconcile

    settings = get_settings()
    start = datetime.now(UTC) - timedelta(seconds=settings.reconcile_lookback_seconds)
    if since is not None:
        try:
            start = datetime.fromisoformat(since)
        except ValueError as exc:
            raise fail(f"--since: not an ISO time: {since!r}") from exc
        start = start if start.tzinfo else start.replace(tzinfo=UTC)
    try:
        report = asyncio.run(reconcile.run(settings, start, fix=not dry_run))
    except Exception as exc:  # the provider or the database did not answer
        raise fail(f"reconcile: {exc!r}"[:300]) from exc
    if as_json:
        findings = [finding.as_dict() for finding in report.findings]
        emit({"since": start, "intents": report.intents, "findings": findings}, True)
    else:
        typer.echo(reconcile.render(report, fix=not dry_run))
    if report.remaining:
        raise typer.Exit(1)


@app.command("autoscale")
def autoscale(
    pools: Annotated[str, typer.Option(help="pools to manage, e.g. 'payments orders'")] = " ".join(
        pool.value for pool in Pool
    ),
    limits: Annotated[str, typer.Option(help="min:max overrides, e.g. 'payments=1:4'")] = "",
    scale_in_window: Annotated[
        float | None, typer.Option(help="seconds (default: each ScaledObject's)")
    ] = None,
    polling: Annotated[
        float | None, typer.Option(help="seconds (default: each ScaledObject's)")
    ] = None,
    metrics_base: Annotated[
        int | None, typer.Option(help="workers' metrics port base (default: METRICS_PORT)")
    ] = None,
) -> None:
    """Start and stop local pool workers by KEDA's rule (ops/autoscale.py); Ctrl-C stops them."""
    from ops import autoscale as scaler

    argv = ["--pools", pools, "--limits", limits]
    for option, value in (
        ("--scale-in-window", scale_in_window),
        ("--polling", polling),
        ("--metrics-base", metrics_base),
    ):
        if value is not None:
            argv += [option, str(value)]
    scaler.main(argv)


def main() -> None:
    app()
