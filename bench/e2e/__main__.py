"""End to end, side by side: paid orders per second and CPU per paid order, Doorbuster
against the plain Celery recipe (bench/plain_celery), with the Stripe emulator at a 200 ms median.

Doorbuster's whole stack (three APIs, four pools, emulator, sink) runs on its own ports, vhost
and databases; then its APIs and pools stop and the plain recipe (one API, one prefork worker,
its own database and vhost) runs against the same emulator, sink, PostgreSQL and RabbitMQ. For
each arm an open-loop storefront places orders at rising fixed rates; a rate is *sustained*
when every order of the window is paid within a grace period and accept-to-paid p95 < 1 s (an
unloaded order takes about 0.3 s: one 200 ms charge and the hops around it). The highest
sustained rate is then held (5 minutes by default). The audit runs on Doorbuster's data.

`python -m bench.e2e [--seconds 30] [--rates 10,20,40] [--hold 300] [--arms ours,plain]`
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
from collections.abc import Iterator
from datetime import UTC, datetime

os.environ.setdefault("DOORBUSTER_TEST_SLOT", "9")

from bench.e2e.arms import Ours, PlainCelery
from bench.e2e.report import pool_settings, write
from bench.e2e.windows import Ladder, ladder
from bench.plain_celery.arm import PlainArm
from devtools.harness.emulator import configure
from devtools.harness.stack import ROOT, Stack, build_stack
from ops.audit import render, run_audit

STAND_IN_PROCESSES = ("stripe", "smtp")


async def run_ours(stack: Stack, args: argparse.Namespace) -> tuple[Ladder, str]:
    arm = Ours(stack)
    since = datetime.now(UTC)
    try:
        result = await ladder(arm, args.rate_list, args.seconds, args.hold)
    finally:
        await arm.close()
    await asyncio.sleep(5)  # confirmations of the last window
    verdict = render(await run_audit(stack.settings(), since, str(stack.maildir)))
    return result, verdict


async def run_plain(arm: PlainCelery, args: argparse.Namespace) -> Ladder:
    try:
        return await ladder(arm, args.rate_list, args.seconds, args.hold)
    finally:
        await arm.close()


def arguments() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--hold", type=float, default=300)
    # Steps of 5 where this machine saturated (about 20 paid/s on 2026-11-25), wider above.
    parser.add_argument("--rates", default="10,15,20,25,30,40,60,80,100,120")
    parser.add_argument("--payments-concurrency", type=int, default=64)
    parser.add_argument("--plain-concurrency", type=int, default=16)
    parser.add_argument("--arms", default="ours,plain")
    return parser


@contextlib.contextmanager
def both_arms(args: argparse.Namespace) -> Iterator[tuple[Stack, PlainArm]]:
    """Doorbuster's stack started (emulator at 200 ms); the plain arm planned beside it. Call
    `switch(stack, plain)` to stop Doorbuster's APIs and pools and start the plain arm."""
    os.chdir(ROOT)
    stack = build_stack()
    stack.full_db_pools()
    stack.processes["orders-api"].env.pop("RABBITMQ_URL", None)
    stack.processes["payments-pool"].argv.extend(["--concurrency", str(args.payments_concurrency)])
    plain = PlainArm(stack.logs, concurrency=args.plain_concurrency)
    try:
        stack.start_all()
        configure(stack, latency_ms=200)
        yield stack, plain
    finally:
        plain.stop()
        stack.stop_all()


def switch(stack: Stack, plain: PlainArm) -> PlainCelery:
    for name in [name for name in stack.running if name not in STAND_IN_PROCESSES]:
        stack.stop(name)
    plain.start(stack.stripe_url, stack.site.ports.smtp)
    return PlainCelery(plain, {name: stack.running[name].pid for name in STAND_IN_PROCESSES})


def main() -> None:
    args = arguments().parse_args()
    args.rate_list = [float(rate) for rate in args.rates.split(",")]
    arms = set(args.arms.split(","))
    ours = verdict = plain_result = None
    with both_arms(args) as (stack, plain):
        if "ours" in arms:
            ours, verdict = asyncio.run(run_ours(stack, args))
        pools = pool_settings(stack)
        if "plain" in arms:
            plain_result = asyncio.run(run_plain(switch(stack, plain), args))
    write(ours, plain_result, verdict, pools, args)


if __name__ == "__main__":
    main()
