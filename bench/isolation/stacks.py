"""The two deployments of the same task code, each a whole stack from `devtools.harness.stack`."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import sys

from bench.isolation.cells import SINGLE
from bench.isolation.single_queue import CONCURRENCY, declare
from devtools.harness.stack import ROOT, Stack, build_stack, drop_test_databases, rabbitmqctl

# What the test stack shortens for its own sake (fast relay and retries, an unthrottled bulk
# pool); the bench runs with the defaults instead. The relay's grace matters here: at 1 s, a
# loaded machine re-published the campaign's 400 batch tasks before their first publish was
# confirmed (harmless, tasks are idempotent, but twice the backlog in the queue).
TEST_TUNING = (
    "OUTBOX_RELAY_INTERVAL_SECONDS",
    "OUTBOX_RELAY_GRACE_SECONDS",
    "MAIL_RETRY_BACKOFF_SECONDS",
    "MAIL_RETRY_BACKOFF_MAX_SECONDS",
    "MAIL_RETRY_JITTER",
    "MAIL_MAX_RETRIES",
    "CAMPAIGN_BATCH_MAX_RETRIES",
    "CAMPAIGN_CLAIM_LEASE_SECONDS",
    "BULK_MAIL_RATE_PER_SECOND",
)


def ours() -> Stack:
    return build_stack()


def single_queue() -> Stack:
    """The same plan with the pools replaced by one worker and every process rerouted."""
    stack = build_stack()
    rerouted: dict = {}
    for name, process in stack.processes.items():
        if name.endswith("-pool"):
            continue
        if name.endswith("-api") or name == "beat":
            python, _, module, *rest = process.argv
            argv = [python, "-m", "bench.isolation.single_queue", "run", module, *rest]
            process = dataclasses.replace(process, argv=argv)
        rerouted[name] = process
    worker = [
        sys.executable,
        "-m",
        "bench.isolation.single_queue",
        "worker",
        "-c",
        str(CONCURRENCY),
    ]
    rerouted["single-worker"] = dataclasses.replace(
        stack.processes["payments-pool"], name="single-worker", argv=worker, metrics_url=None
    )
    stack.processes = rerouted
    return stack


def start(stack: Stack, deployment: str, nice: int = 0) -> None:
    if nice:
        for name in ("bulk-pool", "smtp"):
            if name in stack.processes:
                process = stack.processes[name]
                argv = ["nice", "-n", str(nice), *process.argv]
                stack.processes[name] = dataclasses.replace(process, argv=argv)
    stack.processes["orders-api"].env.pop("RABBITMQ_URL", None)  # no broker proxy here
    for name in TEST_TUNING:  # settings as `make up` has them, the real throttle included
        stack.env.pop(name, None)
    if deployment == SINGLE:
        asyncio.run(declare(stack.env["RABBITMQ_URL"]))
    stack.start_all()


def clean_up(stack: Stack, deployment: str) -> None:
    stack.stop_all()
    kept = ROOT / "var" / "isolation-logs" / deployment  # build_stack empties its log folder
    shutil.rmtree(kept, ignore_errors=True)
    shutil.copytree(stack.logs, kept)
    asyncio.run(drop_test_databases())
    rabbitmqctl("delete_vhost", stack.env["RABBITMQ_URL"].rsplit("/", 1)[1])
    shutil.rmtree(stack.maildir, ignore_errors=True)
