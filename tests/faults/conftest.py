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
from devtools.rabbit_cluster import Cluster, running_cluster
from tests.faults.report import ROWS, render
from tests.support.private_pg import PrivateCluster
from tests.support.tcp_proxy import CuttableProxy

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


# The quorum-queue stack: ports + 73 (its pools' metrics ports, base + 0/10/20/30, clear of the
# private stack's + 50 while both are up during rows g and h; + 70 collided at 19170 and
# 19180), the cluster's nodes on 5701+10*slot.., its proxies.
CLUSTER_PORT_OFFSET = 73
CLUSTER_AMQP_PROXY_PORT = 36672 + 100 * SLOT
CLUSTER_MANAGEMENT_PROXY_PORT = 36673 + 100 * SLOT


@pytest.fixture(scope="module")
def rabbit_cluster() -> Iterator[Cluster]:
    """Three RabbitMQ nodes of Debian's package joined into one cluster (devtools)."""
    with running_cluster(offset=10 * SLOT) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def cluster_proxies(rabbit_cluster: Cluster) -> Iterator[None]:
    """One AMQP and one management address for the cluster, spreading connections over the
    nodes that are up (what a Kubernetes Service in front of the StatefulSet does)."""
    nodes = rabbit_cluster.nodes
    proxies = [
        CuttableProxy(
            listen,
            "127.0.0.1",
            port(nodes[0]),
            tuple(("127.0.0.1", port(node)) for node in nodes[1:]),
        )
        for listen, port in (
            (CLUSTER_AMQP_PROXY_PORT, lambda node: node.amqp_port),
            (CLUSTER_MANAGEMENT_PROXY_PORT, lambda node: node.management_port),
        )
    ]
    for proxy in proxies:
        proxy.start()
    yield
    for proxy in proxies:
        proxy.close()


@pytest.fixture(scope="module")
def cluster_stack(rabbit_cluster: Cluster, cluster_proxies: None) -> Iterator[Stack]:
    """The whole stack on the three-node cluster with `QUEUE_TYPE=quorum`."""
    site = SITE.beside(
        "quorum",
        CLUSTER_PORT_OFFSET,
        amqp_port=CLUSTER_AMQP_PROXY_PORT,
        management_port=CLUSTER_MANAGEMENT_PROXY_PORT,
        queue_type="quorum",
    )
    running = build_stack(site, broker_proxy=False, new_vhost=rabbit_cluster.add_vhost)
    with running.started():
        yield running


@pytest.fixture(scope="module")
async def cluster_shop(cluster_stack: Stack) -> AsyncIterator[Shop]:
    async with Shop(cluster_stack) as client:
        yield client


# Scenario j's broker: one node of its own, because an alarm blocks every publisher of a
# broker and the machine's RabbitMQ on 5672 serves every other suite. Its offset (10 * slot + 5,
# so AMQP on 5706 + 10 * slot) stays clear of the cluster's nodes (10 * slot + 1..3); the
# stack's ports are the session's + 85.
ALARM_PORT_OFFSET = 85


@pytest.fixture
def alarm_broker() -> Iterator[Cluster]:
    """A single RabbitMQ node of Debian's package (devtools.rabbit_cluster with one node)."""
    broker = Cluster(
        offset=10 * SLOT + 5, size=1, folder=ROOT / "var" / f"rabbit-alarm{SLOT or ''}"
    )
    broker.start()
    try:
        yield broker
    finally:
        broker.destroy()


@pytest.fixture
def alarm_stack(alarm_broker: Cluster) -> Iterator[Stack]:
    """The whole stack on the private node (the one scenario that uses it stops it after)."""
    node = alarm_broker.nodes[0]
    site = SITE.beside(
        "alarm", ALARM_PORT_OFFSET, amqp_port=node.amqp_port, management_port=node.management_port
    )
    running = build_stack(site, broker_proxy=False, new_vhost=alarm_broker.add_vhost)
    with running.started():
        yield running


@pytest.fixture
async def alarm_shop(alarm_stack: Stack) -> AsyncIterator[Shop]:
    async with Shop(alarm_stack) as client:
        yield client


# Scenario n's stack: the pools reach the machine's RabbitMQ through a proxy of their own that
# stalls (the APIs go straight to it). Ports are the session's + 42 (its pools' metrics ports,
# base + 0/10/20/30 + 42, fall on none of the other stacks'). The proxy listens below the
# ephemeral range (32768-60999): a port in it was once taken by an outgoing connection of the
# previous run, and the proxy could not bind.
PARTITION_PORT_OFFSET = 42
POOLS_PROXY_PORT = 27672 + 100 * SLOT


@pytest.fixture
def pools_proxy() -> Iterator[CuttableProxy]:
    proxy = CuttableProxy(POOLS_PROXY_PORT, "127.0.0.1", SITE.amqp_port)
    proxy.start()
    yield proxy
    proxy.close()


@pytest.fixture
def partition_stack(pools_proxy: CuttableProxy) -> Iterator[Stack]:
    """The whole stack, every pool behind `pools_proxy` (beat and the APIs reach the broker
    directly: the sweeps it publishes meanwhile wait in the queue, they carry no expiry)."""
    site = SITE.beside("partition", PARTITION_PORT_OFFSET)
    running = build_stack(site, broker_proxy=False)
    through_proxy = f"amqp://guest:guest@127.0.0.1:{POOLS_PROXY_PORT}/{site.vhost}"
    for name, process in running.processes.items():
        if name.endswith("-pool"):
            process.env["RABBITMQ_URL"] = through_proxy
    with running.started():
        yield running


@pytest.fixture
async def partition_shop(partition_stack: Stack) -> AsyncIterator[Shop]:
    async with Shop(partition_stack) as client:
        yield client
