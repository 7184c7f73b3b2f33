"""Fault scenarios print one table at the end of the run: what was accepted, what was lost.

Scenarios c and e run on a second stack of their own (ports, vhost, folders no other test
uses). c restarts PostgreSQL: not the machine's cluster (every checkout's suites and CI use
it), but a private one (`tests/support/private_pg.py`). e takes SMTP away for longer than
the session stack's shortened mail retries (about 9 s, so that other tests see a mail fail
for good quickly): this stack keeps the production retry policy (2, 4, ... 120 s)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace

import pytest

from devtools.harness.shop import Shop
from devtools.harness.stack import ROOT, SITE, SLOT, Stack, build_stack
from devtools.plan import Ports
from tests.faults.report import ROWS, render
from tests.support.private_pg import PrivateCluster

FULL = os.environ.get("DOORBUSTER_FAULTS") == "full"
# The session stack's ports + 50 (slots are 100 apart).
PRIVATE_PORTS = Ports(**{name: port + 50 for name, port in vars(SITE.ports).items()})


def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(reason="full fault suite only: `make faults`")
    for item in items:
        if "fault_full" in item.keywords and not FULL:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter):
    if ROWS:
        terminalreporter.write_line("")
        terminalreporter.write_line(render())


@pytest.fixture(scope="module")
def private_pg() -> Iterator[PrivateCluster]:
    cluster = PrivateCluster(ROOT / "var" / f"pg-faults{SLOT or ''}", 5433 + SLOT)
    cluster.create()
    yield cluster
    cluster.destroy()


# The session stack's test-speed mail retries; the private stack keeps the defaults.
SHORT_MAIL_RETRIES = (
    "MAIL_RETRY_BACKOFF_SECONDS",
    "MAIL_RETRY_BACKOFF_MAX_SECONDS",
    "MAIL_RETRY_JITTER",
    "MAIL_MAX_RETRIES",
    "CAMPAIGN_BATCH_MAX_RETRIES",
)


@pytest.fixture(scope="module")
def private_stack(private_pg: PrivateCluster) -> Iterator[Stack]:
    """The whole stack again, on the private cluster (its restart harms no one else), with
    the production mail retry policy."""
    site = replace(
        SITE,
        ports=PRIVATE_PORTS,
        vhost=f"{SITE.vhost}-pg",
        pg_server=private_pg.server,
        folder_suffix=f"{SITE.folder_suffix}-pg",
    )
    running = build_stack(site, broker_proxy=False)
    for key in SHORT_MAIL_RETRIES:
        running.env.pop(key, None)
    with running.started():
        yield running


@pytest.fixture(scope="module")
async def private_shop(private_stack: Stack) -> AsyncIterator[Shop]:
    async with Shop(private_stack) as client:
        yield client
