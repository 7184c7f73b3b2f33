"""The whole stack, started for the test session on its own ports, databases and vhost.

It runs the same process plan as `make up` (devtools/plan.py), so the end-to-end tests
exercise what a developer starts. Each process logs to var/test-logs/<name>.log.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import asyncpg

from devtools.dkim_dev_key import dev_dkim_env
from devtools.plan import Ports, Process, plan
from devtools.readiness import answers
from shared.infra.settings import Settings
from workers.pools import Pool

ROOT = Path(__file__).resolve().parents[2]
# Several checkouts may run their suites at once on one machine: each picks a slot, which gives
# it its own ports, vhost, databases and folders.
SLOT = int(os.environ.get("DOORBUSTER_TEST_SLOT", "0"))
_OFFSET = SLOT * 100
PORTS = Ports(
    orders=18001 + _OFFSET,
    inventory=18002 + _OFFSET,
    notifications=18003 + _OFFSET,
    stripe=22111 + _OFFSET,
    smtp=21025 + _OFFSET,
    metrics=19100 + _OFFSET,
)
BROKER_PROXY_PORT = 35672 + _OFFSET
VHOST = f"doorbuster-test{SLOT or ''}"
DB_PREFIX = f"doorbuster_test{SLOT or ''}"
PG_SERVER = "postgresql://postgres@127.0.0.1:5432"


@dataclass(frozen=True)
class Site:
    """Where one stack runs: its ports, vhost, PostgreSQL server, database names and folders.
    The session's stack uses the slot's; a fault scenario that must not touch shared
    infrastructure (a PostgreSQL restart) builds a second stack on a site of its own."""

    ports: Ports = PORTS
    vhost: str = VHOST
    pg_server: str = PG_SERVER
    db_prefix: str = DB_PREFIX
    folder_suffix: str = f"{SLOT or ''}"
    # The broker: the machine's RabbitMQ, or (fault scenarios) a cluster behind a proxy.
    amqp_port: int = 5672
    management_port: int = 15672
    queue_type: str = "classic"

    @property
    def database_url(self) -> str:
        return self.pg_server.replace("postgresql://", "postgresql+asyncpg://", 1)

    def beside(self, name: str, port_offset: int, **changes: Any) -> Site:
        """The site of a second stack beside this one: every port + `port_offset` (pick one
        whose pools' metrics ports, base + 0/10/20/30, meet no other stack's), and a vhost,
        databases and folders named after `name`; `changes` set anything else."""
        shifted = Ports(**{port: number + port_offset for port, number in vars(self.ports).items()})
        named = {
            "ports": shifted,
            "vhost": f"{self.vhost}-{name}",
            "db_prefix": f"{self.db_prefix}_{name}",
            "folder_suffix": f"{self.folder_suffix}-{name}",
        }
        return replace(self, **{**named, **changes})


SITE = Site()


def rabbitmqctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=60)


def fresh_vhost(vhost: str = VHOST) -> None:
    """A clean RabbitMQ vhost per session: no messages or queues left from a previous run."""
    rabbitmqctl("delete_vhost", vhost)
    created = rabbitmqctl("add_vhost", vhost)
    if created.returncode != 0:
        raise RuntimeError(f"cannot create vhost {vhost}: {created.stderr}")
    rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")


async def drop_databases(*names: str, pg_server: str = PG_SERVER) -> None:
    """Drop these databases of the test server if they exist, whoever is connected."""
    connection = await asyncpg.connect(f"{pg_server}/postgres")
    try:
        for name in names:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


async def drop_test_databases(site: Site = SITE) -> None:
    services = ("orders", "inventory", "notifications")
    await drop_databases(*(f"{site.db_prefix}_{s}" for s in services), pg_server=site.pg_server)


# Benchmarks run one stack at a time and take the production sizes back (`Stack.full_db_pools`).
SHARED_MACHINE_DB_POOLS = {"DB_POOL_SIZE": "4", "DB_MAX_OVERFLOW": "0"}


def test_env(site: Site = SITE) -> dict[str, str]:
    return {
        **os.environ,
        "DOORBUSTER_ENV": "test",
        "RABBITMQ_URL": f"amqp://guest:guest@127.0.0.1:{site.amqp_port}/{site.vhost}",
        "RABBITMQ_MANAGEMENT_URL": f"http://guest:guest@127.0.0.1:{site.management_port}",
        "QUEUE_TYPE": site.queue_type,
        "DATABASE_URL": f"{site.database_url}/{site.db_prefix}",
        "STRIPE_API_BASE": f"http://127.0.0.1:{site.ports.stripe}",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(site.ports.smtp),
        "STOREFRONT_API_KEYS": "",
        "ADMIN_API_KEYS": "",
        # Up to three stacks share the machine's PostgreSQL (max_connections 100 by default):
        # each process opens up to 2 x DB_POOL_SIZE + DB_MAX_OVERFLOW (SQLAlchemy's pool and the
        # prepared-statement pool), eight processes a stack. At the default 10 an exercised
        # session stack and fault j's stack under load passed 100 and a fresh-clone CI run was
        # refused a connection ("too many clients"); 4 still serves the tests' rates.
        **SHARED_MACHINE_DB_POOLS,
        "OUTBOX_RELAY_INTERVAL_SECONDS": "0.5",
        "OUTBOX_RELAY_GRACE_SECONDS": "1",
        # The session's beat never reconciles on its own: tests hold orders charged and not yet
        # recorded on purpose, and run `doorbuster reconcile` themselves where they mean to.
        "RECONCILE_INTERVAL_SECONDS": "86400",
        # Short, deterministic mail retries (1, 2, 2, 2, 2 s: about 9 s in all) so that the SMTP
        # outage tests run in seconds; the campaign batches retry for about 40 s.
        "MAIL_RETRY_BACKOFF_SECONDS": "1",
        "MAIL_RETRY_BACKOFF_MAX_SECONDS": "2",
        "MAIL_RETRY_JITTER": "false",
        "MAIL_MAX_RETRIES": "5",
        "CAMPAIGN_BATCH_MAX_RETRIES": "20",
        # Claims a killed bulk worker left are settled after 10 s instead of 2 minutes.
        "CAMPAIGN_CLAIM_LEASE_SECONDS": "10",
        # Above what one bulk process reaches here: the limiter runs on every chunk but does not
        # slow the tests (its arithmetic and its PostgreSQL bucket have tests of their own).
        "BULK_MAIL_RATE_PER_SECOND": "5000",
        # Every mail signed (with the development key unless the environment names one), the
        # one-click links pointing at this stack's notifications API.
        **dev_dkim_env(os.environ),
        "UNSUBSCRIBE_BASE_URL": f"http://127.0.0.1:{site.ports.notifications}",
        "PYTHONUNBUFFERED": "1",
    }


@dataclass
class Stack:
    env: dict[str, str]
    maildir: Path
    logs: Path
    processes: dict[str, Process] = field(default_factory=dict)
    running: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    site: Site = SITE

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.site.ports.service(service)}"

    @property
    def stripe_url(self) -> str:
        return f"http://127.0.0.1:{self.site.ports.stripe}"

    async def fetch(self, service: str, query: str, *args: object) -> list[asyncpg.Record]:
        """Read (or, as test plumbing, write) one of this stack's databases directly."""
        return await db_fetch(service, query, *args, site=self.site)

    def settings(self) -> Settings:
        """Settings for code that reads this stack's databases, broker and Stripe directly
        (the audit)."""
        return Settings(
            rabbitmq_url=self.env["RABBITMQ_URL"],
            rabbitmq_management_url=self.env["RABBITMQ_MANAGEMENT_URL"],
            queue_type=self.env["QUEUE_TYPE"],
            database_url=self.env["DATABASE_URL"],
            stripe_api_base=self.stripe_url,
        )

    def full_db_pools(self) -> None:
        """The production pool sizes (shared/infra/settings.py), for a stack alone on the
        machine: a benchmark measures what a pod would do."""
        for key in SHARED_MACHINE_DB_POOLS:
            self.env.pop(key, None)

    def start(self, name: str) -> None:
        process = self.processes[name]
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the process
        self.running[name] = subprocess.Popen(
            process.argv, cwd=ROOT, env={**self.env, **process.env}, stdout=log, stderr=log
        )

    def stop(self, name: str, sig: int = signal.SIGTERM, wait: float = 15) -> None:
        popen = self.running.pop(name)
        popen.send_signal(sig)
        try:
            popen.wait(wait)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait()

    def start_all(self) -> None:
        for name in self.processes:
            self.start(name)
        self.wait_healthy()

    @contextlib.contextmanager
    def started(self) -> Iterator[Stack]:
        """Every process started (and healthy) for the block, every one stopped after it."""
        try:
            self.start_all()
            yield self
        finally:
            self.stop_all()

    def stop_all(self) -> None:
        for name in list(self.running):
            self.stop(name)

    def wait_healthy(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        for name in list(self.running):  # what has been started
            process = self.processes[name]
            while process.health_url:
                exited = self.running[name].poll()
                if exited is not None:
                    raise RuntimeError(f"{name} exited with {exited}; see {self.logs}/{name}.log")
                if answers(process.health_url):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} not healthy in {timeout}s; see {self.logs}")
                time.sleep(0.2)


def build_stack(
    site: Site = SITE,
    broker_proxy: bool = True,
    new_vhost: Callable[[str], None] = fresh_vhost,
) -> Stack:
    """Fresh databases and vhost (made by `new_vhost`), migrated; the processes planned, not
    started. With `broker_proxy` the orders API reaches RabbitMQ through the cuttable proxy."""
    asyncio.run(drop_test_databases(site))
    new_vhost(site.vhost)
    env = test_env(site)
    subprocess.run([sys.executable, "-m", "shared.infra.migrate"], cwd=ROOT, env=env, check=True)
    maildir = ROOT / "var" / f"test-mail{site.folder_suffix}"
    logs = ROOT / "var" / f"test-logs{site.folder_suffix}"
    shutil.rmtree(maildir, ignore_errors=True)
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True)
    maildir.parent.mkdir(parents=True, exist_ok=True)
    processes = plan(site.ports, {pool: 1 for pool in Pool}, True, True, str(maildir))
    stack = Stack(env=env, maildir=maildir, logs=logs, site=site)
    for process in processes:
        stack.processes[process.name] = process
    if broker_proxy:
        # The orders API reaches the broker through a proxy the outbox tests can cut.
        orders_api = stack.processes["orders-api"]
        orders_api.env["RABBITMQ_URL"] = (
            f"amqp://guest:guest@127.0.0.1:{BROKER_PROXY_PORT}/{site.vhost}"
        )
    return stack


async def db_fetch(
    service: str, query: str, *args: object, site: Site = SITE
) -> list[asyncpg.Record]:
    """Read a service's test database directly (assertions only; the code under test never
    reads another service's database)."""
    connection = await asyncpg.connect(f"{site.pg_server}/{site.db_prefix}_{service}")
    try:
        return await connection.fetch(query, *args)
    finally:
        await connection.close()
