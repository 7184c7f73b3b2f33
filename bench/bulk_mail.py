"""Campaign throughput: the batched path next to one task per mail, in one run.

    python -m bench.bulk_mail [--mails 3000] [--repeats 3] [--rate-check 150] [--no-write]

Starts its own SMTP sink, notifications API, bulk pool (1 process, the default 2 threads) and a
baseline pool of the same size (bench/one_mail_worker.py), in a vhost and database of their
own. Each repetition runs both arms on the same N subscribers, alternating which goes first:
- batched: POST /v1/campaigns, then the real path (audience snapshot, outbox, batch tasks of
  500, one SMTP connection per batch, claims and counters in PostgreSQL, the PostgreSQL token
  bucket at a rate far above what is reached, so it is paid for but never waits);
- baseline: N plain Celery tasks, published as this system publishes (aio-pika, confirms, 200 in
  flight), one SMTP connection per mail, the same pre-rendered message.
Both clocks stop when the sink holds all N mails. Medians of the repetitions, their ratio and an
optional check that a low rate is held go into docs/benchmarks.md ("Bulk mail").
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import statistics
import sys
import time

import aio_pika
import httpx

from bench import one_mail_worker as baseline
from bench.harness import MAIL_ROOT, ROOT, BenchStack
from bench.report import write_section
from shared.messaging.topology import TASK_EXCHANGE
from shared.messaging.wire import OutgoingTask, celery_body, celery_headers

ADMIN = {"Authorization": "Bearer dev-admin"}
UNTHROTTLED = 100_000.0
DOC = ROOT / "docs" / "benchmarks.md"


def import_audience(stack: BenchStack, mails: int) -> list[str]:
    people = [f"bench{index:07d}@example.com" for index in range(mails)]
    with httpx.Client(base_url=stack.api, headers=ADMIN, timeout=120) as client:
        for start in range(0, mails, 10_000):
            chunk = [{"email": email} for email in people[start : start + 10_000]]
            client.post("/v1/subscribers", json={"subscribers": chunk}).raise_for_status()
    return people


def run_campaign(stack: BenchStack, mails: int) -> tuple[float, str]:
    """Seconds from POST /v1/campaigns to the last mail in the sink; and the campaign id."""
    target = stack.mail_count() + mails
    started = time.monotonic()
    response = httpx.post(
        f"{stack.api}/v1/campaigns",
        json={"subject": baseline.SUBJECT, "body": baseline.BODY},
        headers=ADMIN,
        timeout=120,
    )
    response.raise_for_status()
    finished = stack.wait_mail_count(target, timeout=max(120, mails / 20))
    return finished - started, response.json()["id"]


async def publish_baseline(url: str, run: str, people: list[str], window: int = 200) -> None:
    """N task messages the way this system publishes (aio-pika, Celery protocol 2 JSON,
    persistent, publisher confirms, `window` in flight), to the baseline's own queue."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(TASK_EXCHANGE)
        for start in range(0, len(people), window):
            tasks = [
                OutgoingTask(baseline.TASK, {"run": run, "subscriber_id": index, "email": email})
                for index, email in enumerate(people[start : start + window], start)
            ]
            await asyncio.gather(*(exchange.publish(_message(t), baseline.QUEUE) for t in tasks))
    finally:
        await connection.close()


def _message(task: OutgoingTask) -> aio_pika.Message:
    return aio_pika.Message(
        body=celery_body(task),
        headers=celery_headers(task),
        content_type="application/json",
        content_encoding="utf-8",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=task.id,
    )


def run_baseline(stack: BenchStack, people: list[str], run: str) -> tuple[float, float]:
    """Seconds from the first publish to the last mail in the sink; and the publishing time."""
    target = stack.mail_count() + len(people)
    started = time.monotonic()
    asyncio.run(publish_baseline(stack.env["RABBITMQ_URL"], run, people))
    published = time.monotonic() - started
    finished = stack.wait_mail_count(target, timeout=max(120, len(people) / 10))
    return finished - started, published


def rate_check(stack: BenchStack, rate: float) -> dict[str, float]:
    """Restart the bulk pool at a low rate and see that a campaign holds it."""
    mails = int(rate * 6)
    stack.stop("bulk")
    stack.start_bulk_pool(rate)
    stack.wait_ready()
    people_seconds, _ = run_campaign(stack, mails)
    return {"rate": rate, "mails": mails, "seconds": people_seconds}


def measure(args: argparse.Namespace) -> dict:
    stack = BenchStack()
    stack.setup(bulk_rate=UNTHROTTLED)
    try:
        people = import_audience(stack, args.mails)
        batched, one_per_mail, publish, runs = [], [], [], []
        for rep in range(args.repeats):
            order = ("baseline", "batched") if rep % 2 == 0 else ("batched", "baseline")
            for arm in order:
                if arm == "batched":
                    seconds, campaign_id = run_campaign(stack, args.mails)
                    batched.append(args.mails / seconds)
                    runs.append(campaign_id)
                else:
                    seconds, published = run_baseline(stack, people, f"baseline{rep}")
                    one_per_mail.append(args.mails / seconds)
                    publish.append(published)
                    runs.append(f"baseline{rep}")
                print(f"rep {rep + 1} {arm:8s} {args.mails / seconds:7.0f} mails/s", flush=True)
        keys = stack.keys()
        duplicates = sum(count - 1 for count in keys.values())
        per_run = {run: sum(1 for key in keys if key.startswith(run + ":")) for run in runs}
        assert all(count == args.mails for count in per_run.values()), per_run
        check = rate_check(stack, args.rate_check) if args.rate_check else None
    finally:
        stack.teardown()
    return {
        "batched": batched,
        "baseline": one_per_mail,
        "publish": publish,
        "duplicates": duplicates,
        "rate_check": check,
    }


def report(args: argparse.Namespace, result: dict, load: tuple[float, float]) -> str:
    batched, base = statistics.median(result["batched"]), statistics.median(result["baseline"])
    rows = "\n".join(
        f"| {rep + 1} | {b:.0f} | {o:.0f} |"
        for rep, (b, o) in enumerate(zip(result["batched"], result["baseline"], strict=True))
    )
    lines = [
        "## Bulk mail",
        "",
        f"Command: `python -m bench.bulk_mail --mails {args.mails} --repeats {args.repeats}"
        f"{f' --rate-check {args.rate_check:g}' if args.rate_check else ''}` "
        f"(`make bench`). Machine: `nproc` {os.cpu_count()}, Python {sys.version.split()[0]}, "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; load average {load[0]:.1f} before, "
        f"{load[1]:.1f} after (the machine is shared: other checkouts run their suites on it).",
        "",
        f"{args.mails:,} mails per arm, the same message, to the same local aiosmtpd sink "
        f"(own process, Maildir in {MAIL_ROOT}), each arm on one process with the bulk pool's 2 "
        "threads; clock from the campaign POST (batched) or the first publish (baseline) until "
        "the sink holds every mail. Batched: the real path (batches of 500, claims and "
        "counters in PostgreSQL, the token bucket, pipelined SMTP over "
        f"{stack_setting('campaign_smtp_connections')} connections per batch); baseline: a "
        "Celery task and an aiosmtplib connection per mail. Profiles, the sink's ceiling and "
        'CPU per mail: docs/campaigns.md, "Throughput".',
        "",
        "| repetition | batched campaign (mails/s) | one task per mail (mails/s) |",
        "| --- | --- | --- |",
        rows,
        f"| **median** | **{batched:.0f}** | **{base:.0f}** |",
        "",
        f"Ratio batched / one task per mail: **{batched / base:.1f}x**. Duplicates in the sink: "
        f"{result['duplicates']}. Publishing the baseline's {args.mails:,} tasks took "
        f"{statistics.median(result['publish']):.1f} s (median; aio-pika, confirms, 200 in "
        "flight), while its pool already sent. Target (issue 6): 10x; what bounds it on this "
        'machine, with the profiles: docs/campaigns.md, "Throughput".',
    ]
    if result["rate_check"]:
        lines += ["", rate_line(result["rate_check"])]
    return "\n".join(lines) + "\n"


def rate_line(check: dict[str, float]) -> str:
    achieved = check["mails"] / check["seconds"]
    return (
        f"Rate limit held: bulk pool restarted with `BULK_MAIL_RATE_PER_SECOND={check['rate']:g}`, "
        f"a {check['mails']:,}-mail campaign took {check['seconds']:.1f} s = {achieved:.0f} "
        f"mails/s (burst {int(check['rate'] * 0.1)}: one chunk)."
    )


def stack_setting(name: str) -> object:
    """A setting as the bench's pools read it (their environment is the bench's)."""
    from shared.infra.settings import get_settings

    return getattr(get_settings(), name)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bulk_mail", description=__doc__)
    parser.add_argument("--mails", type=int, default=3_000, help="per arm (default 3000)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rate-check", type=float, default=150.0, help="0 skips it")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]
    result = measure(args)
    section = report(args, result, (load_before, os.getloadavg()[0]))
    print(section)
    if not args.no_write:
        write_section("Bulk mail", section.removeprefix("## Bulk mail").strip())
        print(f"written to {DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
