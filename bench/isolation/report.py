"""The "Priority isolation" section of docs/benchmarks.md, from the cells of a run."""

from __future__ import annotations

import argparse
import os

from bench.isolation.cells import BULK_RATE, OURS, SINGLE, Cell, ratio, shown
from bench.isolation.single_queue import CONCURRENCY


def summary(depths: dict[str, list[int]]) -> str:
    """`notifications.bulk 398→372 (max 398)`, per queue that held anything."""
    return (
        ", ".join(
            f"{queue} {samples[0]}→{samples[-1]} (max {max(samples)})"
            for queue, samples in depths.items()
        )
        or "all empty"
    )


TABLE_HEAD = (
    "| deployment | backlog | placed | paid in time | p50 s | p95 s | p99 s | p99 s per window "
    "| campaign mails sent (per s) | queue depths: ready, first→last (max) |\n"
    "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- |"
)


def row(cell: Cell, args: argparse.Namespace) -> str:
    cap, paid = args.cap, len(cell.latencies)
    backlog = f"{args.mails:,} mails" if cell.backlog else "none"
    windows = " / ".join(shown(p99, cap) for p99 in cell.windows)
    placed = f"{cell.placed} ({cell.refused} refused)" if cell.refused else str(cell.placed)
    return (
        f"| {cell.deployment} | {backlog} | {placed} | {paid} | {shown(cell.p(50), cap)} | "
        f"{shown(cell.p(95), cap)} | **{shown(cell.p(99), cap)}** | {windows} | "
        f"{cell.mails_sent:,} ({cell.mails_sent / max(cell.seconds, 1e-9):.0f}/s) | "
        f"{summary(cell.depths)} |"
    )


def cpu_line(cell: Cell) -> str:
    shares = sorted(cell.cpu_share().items(), key=lambda item: -item[1])
    listed = ", ".join(f"{name} {share:.0%}" for name, share in shares if share >= 0.005)
    backlog = "with backlog" if cell.backlog else "no backlog"
    return f"- {cell.deployment}, {backlog}: {listed}"


def ratios(cells: list[Cell], cap: float) -> str:
    by = {(cell.deployment, cell.backlog): cell for cell in cells}
    found = [name for name in (OURS, SINGLE) if (name, True) in by and (name, False) in by]
    return ", ".join(
        f"{name} **{ratio(by[name, True].p(99), by[name, False].p(99), cap)}**" for name in found
    )


def report(cells: list[Cell], args: argparse.Namespace, stamped: str, minutes: float) -> str:
    rows = "\n".join(row(cell, args) for cell in cells)
    cpu = "\n".join(cpu_line(cell) for cell in cells)
    window = args.seconds / 2
    return f"""
{stamped} The whole run took {minutes:.1f} minutes; load average
{os.getloadavg()[0]:.1f} at the end: the machine is shared, other checkouts ran their suites on
it during the run.

What it measures: accept-to-paid latency of checkouts (POST /v1/orders answered 202 -> order
`paid`; the orders database's `created_at` and `updated_at`, one clock) with no campaign and
while a campaign to {args.mails:,} subscribers is being sent, in two deployments of the same
task code on the same machine, one after the other:
- **ours**: the stack as `make up` plans it: queues `payments`, `orders`,
  `notifications.transactional` and `notifications.bulk` with message priorities, one pool
  per queue (16 + 8 + 4 + 2 threads);
- **single-queue**: every task routed to Celery's default queue `celery` (no priorities),
  consumed by one worker of {CONCURRENCY} threads (`bench/isolation/single_queue.py`):
  default routing and one `celery worker`, with the same threads, prefetch, acks and
  campaign throttle.

Load: {args.rate:g} checkouts/s offered (open loop), Stripe emulator at a
{args.stripe_latency_ms:g} ms median, in four windows of {window:g} s per deployment, in the order
no backlog, backlog, backlog, no backlog, so that a load on the machine that drifts during the
run weighs on both conditions alike. Backlog: the campaign's {args.mails // 500:,} batch tasks
are queued and the bulk path is sending under its real throttle (at most {BULK_RATE:g} mails/s
for the pool, and Celery's rate limit on batches; the rate it reached is in the table) before
the backlog windows start, and most of the batches are still queued when they end; then the
campaign is cancelled and its queue purged. After each window the bench waits for its orders at
most {args.cap:g} s; "> {args.cap:g}" is a percentile that falls among orders still unpaid then
(nearest rank over all orders placed, `bench/isolation/cells.py`).

{TABLE_HEAD}
{rows}

p99 with backlog / p99 without: {ratios(cells, args.cap)} (target for ours: <= 1.2).

CPU during the windows (share of one core) of the stack's processes and of the PostgreSQL
backends serving its databases (RabbitMQ and the load generator not included):
{cpu}

Reading it: in the single queue the campaign's batches are ahead of every task of an order
in one FIFO queue, and a batch holds a worker thread for as long as the throttle makes it wait
(500 mails, with {BULK_RATE:g} mails/s shared by every running batch), so an order's reserve,
apply and charge wait for the campaign. In ours nothing of an order queues behind a batch (the
`payments` and `orders` depths); what the backlog can still take from checkouts is CPU: the
bulk pool, the SMTP sink and their PostgreSQL backends run on the same 2 cores as the order
path (the CPU lines), and so do the other checkouts' suites when the machine is shared.
"""
