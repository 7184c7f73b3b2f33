"""Fault scenarios print one table at the end of the run: what was accepted, what was lost.

Scenario c restarts PostgreSQL: not the machine's cluster (every checkout's suites and CI use
it), but a private one (`tests/support/private_pg.py`) under a second stack of its own, on
ports, a vhost and folders no other test uses."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace

import pytest

from deploy.local.stack import Ports
from tests.faults.report import ROWS, render
from tests.support.private_pg import PrivateCluster
from tests.support.shop import Shop
from tests.support.stack import ROOT, SITE, SLOT, Stack, build_stack

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


@pytest.fixture(scope="module")
def pg_stack(private_pg: PrivateCluster) -> Iterator[Stack]:
    """The whole stack again, on the private cluster: its restart harms no one else."""
    site = replace(
        SITE,
        ports=PRIVATE_PORTS,
        vhost=f"{SITE.vhost}-pg",
        pg_server=private_pg.server,
        folder_suffix=f"{SITE.folder_suffix}-pg",
    )
    running = build_stack(site, broker_proxy=False)
    try:
        running.start_all()
        yield running
    finally:
        running.stop_all()


@pytest.fixture(scope="module")
async def pg_shop(pg_stack: Stack) -> AsyncIterator[Shop]:
    client = Shop(pg_stack)
    yield client
    await client.close()
