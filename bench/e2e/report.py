"""The side-by-side section of docs/benchmarks.md that `bench.e2e` writes."""

from __future__ import annotations

import argparse
import os

from bench.e2e.windows import GRACE, SUSTAINED_P95_S, Ladder, Window
from bench.report import stamp, write_section
from devtools.harness.stack import Stack
from workers.pools import POOLS

TITLE = "End to end: paid orders per second"
# Issue 15's targets for this machine.
TARGET_MS, TARGET_RATE = 15.0, 100.0
COLUMNS = "offered/s, window s, placed, paid, paid/s, to paid p50 s, p95 s, busy cores"
HEADER = (
    f"| {COLUMNS.replace(', ', ' | ')} | system ms/order | sustained |\n"
    + "| ---: " * 9
    + "| --- |"
)


def pool_settings(stack: Stack) -> dict[str, str]:
    """Each pool's effective settings: its profile and the flags this run added on top."""
    settings = {}
    for pool, profile in POOLS.items():
        process = stack.processes.get(f"{pool.value}-pool")
        if process is None:
            continue
        flags = process.argv[process.argv.index(pool.value) + 1 :]
        extra = [flag for flag in flags if flag in ("--concurrency", "-c", "-P", "--pool")]
        settings[pool.value] = (
            f"{profile.model} x {profile.concurrency}, prefetch "
            f"{profile.prefetch_multiplier}, 1 process"
            + (f"; run with {' '.join(flags[flags.index(extra[0]) :][:2])}" if extra else "")
        )
    return settings


def _row(w: Window) -> str:
    busy = f"{w.cpu.busy_cores:.2f}" if w.cpu else "?"
    return (
        f"| {w.rate:.0f} | {w.seconds:.0f} | {w.placed} | {w.paid} | {w.paid_per_second:.1f} | "
        f"{w.p50_s:.2f} | {w.p95_s:.2f} | {busy} | {w.system_ms():.1f} | "
        f"{'yes' if w.sustained else 'no'} |"
    )


def _ratio(ours: float, plain: float) -> str:
    return f"{ours / plain:.2f}x" if plain and plain == plain and ours == ours else "-"


def _summary(ours: Ladder | None, plain: Ladder | None) -> str:
    def ms(ladder: Ladder | None) -> float:
        window = ladder.profiled if ladder else None
        return window.system_ms() if window else float("nan")

    def stand_ins(ladder: Ladder | None) -> str:
        window = ladder.profiled if ladder else None
        if not window:
            return "-"
        return ", ".join(f"{name} {value:.1f}" for name, value in window.stand_in_ms().items())

    held = [ladder.held_rate if ladder else 0.0 for ladder in (ours, plain)]
    cpu = [ms(ours), ms(plain)]
    best = [ladder.best if ladder else 0.0 for ladder in (ours, plain)]
    rows = [
        ("", "Doorbuster", "plain Celery", "Doorbuster / plain", "target"),
        ("---", "---:", "---:", "---:", "---"),
        (
            "system CPU ms per paid order (profiled window)",
            f"{cpu[0]:.1f}",
            f"{cpu[1]:.1f}",
            _ratio(*cpu),
            f"<= {TARGET_MS:g} and <= 0.5x",
        ),
        (
            f"rate held for the hold window at p95 < {SUSTAINED_P95_S:g} s (orders/s offered)",
            f"{held[0]:.0f}",
            f"{held[1]:.0f}",
            _ratio(*held),
            f">= {TARGET_RATE:g} and >= 2x",
        ),
        ("highest sustained paid/s (any window)", f"{best[0]:.1f}", f"{best[1]:.1f}", "", ""),
        ("stand-ins, CPU ms per paid order", stand_ins(ours), stand_ins(plain), "", "-"),
    ]
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def _arm_section(ladder: Ladder | None) -> str:
    if ladder is None:
        return "Not run."
    rows = "\n".join(_row(w) for w in ladder.all)
    profiled = ladder.profiled
    profile = (
        f"""Where the CPU went in the {"hold" if ladder.held else "last sustained"} window
({profiled.paid} paid orders; bench/cpu.py reads /proc per process tree):

{profiled.cpu.table(profiled.paid, "paid order")}

At {profiled.system_ms():.1f} system CPU ms per paid order (stand-ins excluded), this machine's
{os.cpu_count()} cores would cap the system alone near
**{(os.cpu_count() or 1) * 1000 / profiled.system_ms():.0f} paid orders/s**."""
        if profiled and profiled.cpu and profiled.paid
        else "No window was sustained: no profile."
    )
    return f"""{HEADER}
{rows}

{profile}"""


def write(
    ours: Ladder | None,
    plain: Ladder | None,
    verdict: str | None,
    pools: dict[str, str],
    args: argparse.Namespace,
) -> None:
    pool_rows = "\n".join(f"| {name} | {setting} |" for name, setting in pools.items())
    command = (
        f"python -m bench.e2e --seconds {args.seconds:g} --rates {args.rates} "
        f"--hold {args.hold:g} --payments-concurrency {args.payments_concurrency} "
        f"--plain-concurrency {args.plain_concurrency} --arms {args.arms}"
    )
    body = f"""
{stamp(command)}

Both arms on one machine, one after the other in one run, against the same Stripe emulator (200
ms median), SMTP sink, PostgreSQL and RabbitMQ. **Doorbuster**: 3 APIs, 4 pools with one process
each, outbox, confirms, idempotency, acks late. **Plain Celery** (bench/plain_celery): FastAPI +
SQLAlchemy insert + `.delay()`, reserve -> charge (Stripe SDK) -> mail (smtplib), one queue,
prefork x {args.plain_concurrency}, no outbox, no confirms, no idempotency. A window is
sustained when all its orders are paid within {GRACE:.0f} s and accept-to-paid p95 <
{SUSTAINED_P95_S:g} s; the highest sustained rate is then held for {args.hold:.0f} s. *System*
CPU is every process but the stand-ins (emulator, sink, load generator), PostgreSQL and
RabbitMQ included.

{_summary(ours, plain)}

### Doorbuster

{_arm_section(ours)}

Pool settings of the run:

| pool | profile (workers/pools.py) and overrides |
| --- | --- |
{pool_rows}

Audit after Doorbuster's windows:

```
{verdict or "not run"}
```

### Plain Celery

{_arm_section(plain)}
"""
    print(f"wrote {write_section(TITLE, body)}")
