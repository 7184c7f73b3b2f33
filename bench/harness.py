"""A throw-away notifications stack for benchmarks: its own RabbitMQ vhost, database, ports and
Maildir (offset by DOORBUSTER_TEST_SLOT, like the test stack), so it runs next to other work."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx

from devtools.dkim_dev_key import dev_dkim_env

ROOT = Path(__file__).resolve().parents[1]
SLOT = int(os.environ.get("DOORBUSTER_TEST_SLOT", "0"))
NAME = f"doorbuster-bench{SLOT or ''}"
DB_PREFIX = f"doorbuster_bench{SLOT or ''}"
API_PORT, SMTP_PORT = 19003 + SLOT * 100, 23025 + SLOT * 100
PG_SERVER = "postgresql://postgres@127.0.0.1:5432"
# The sink stands in for a relay on other machines; its Maildir goes to tmpfs when there is
# one, so that the relay's disk does not take the 2 cores both arms share (on this disk a
# Maildir write cost 0.3 ms of CPU and 0.5 ms of wall time per mail under load, against 0.03
# ms on tmpfs; docs/campaigns.md, "Throughput").
MAIL_ROOT = Path("/dev/shm") if os.path.isdir("/dev/shm") else ROOT / "var"


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, timeout=60, check=False)


async def drop_database() -> None:
    connection = await asyncpg.connect(f"{PG_SERVER}/postgres")
    try:
        await connection.execute(
            f'DROP DATABASE IF EXISTS "{DB_PREFIX}_notifications" WITH (FORCE)'
        )
    finally:
        await connection.close()


def bench_env(bulk_rate: float) -> dict[str, str]:
    return {
        **os.environ,
        "DOORBUSTER_ENV": "test",
        "RABBITMQ_URL": f"amqp://guest:guest@127.0.0.1:5672/{NAME}",
        "DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:5432/{DB_PREFIX}",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(SMTP_PORT),
        "STOREFRONT_API_KEYS": "",
        "ADMIN_API_KEYS": "",
        "BULK_MAIL_RATE_PER_SECOND": str(bulk_rate),
        # Campaign mail signed and carrying its unsubscribe links, as in production.
        **dev_dkim_env(os.environ),
        "UNSUBSCRIBE_BASE_URL": f"http://127.0.0.1:{API_PORT}",
        "PYTHONUNBUFFERED": "1",
    }


@dataclass
class BenchStack:
    maildir: Path = MAIL_ROOT / f"{NAME}-mail"
    logs: Path = ROOT / "var" / f"bench-logs{SLOT or ''}"
    env: dict[str, str] = field(default_factory=dict)
    running: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{API_PORT}"

    def setup(self, bulk_rate: float) -> None:
        asyncio.run(drop_database())
        rabbitmqctl("delete_vhost", NAME)
        rabbitmqctl("add_vhost", NAME)
        rabbitmqctl("set_permissions", "-p", NAME, "guest", ".*", ".*", ".*")
        shutil.rmtree(self.maildir, ignore_errors=True)
        shutil.rmtree(self.logs, ignore_errors=True)
        self.logs.mkdir(parents=True)
        self.env = bench_env(bulk_rate)
        py = sys.executable
        subprocess.run([py, "-m", "shared.infra.migrate", "notifications"], cwd=ROOT, env=self.env)
        sink = ["-m", "devtools.smtp_sink", "--port", str(SMTP_PORT)]
        self.start("smtp", [py, *sink, "--maildir", str(self.maildir)])
        app = "services.notifications.main:create_app"
        uvicorn = ["-m", "uvicorn", app, "--factory", "--no-access-log"]
        self.start("api", [py, *uvicorn, "--port", str(API_PORT)])
        self.start_bulk_pool(bulk_rate)
        self.start("baseline", [py, "-m", "bench.one_mail_worker"])
        self.wait_ready()

    def start_bulk_pool(self, rate: float) -> None:
        self.env["BULK_MAIL_RATE_PER_SECOND"] = str(rate)
        self.start("bulk", [sys.executable, "-m", "workers", "bulk", "--name", f"bulk@{NAME}"])

    def start(self, name: str, argv: list[str]) -> None:
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - lives with the process
        self.running[name] = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=log, stderr=log)

    def stop(self, name: str) -> None:
        process = self.running.pop(name)
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.api}/readyz", timeout=1).status_code == 200:
                    time.sleep(3)  # the pools connect and declare their queues
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"the bench stack did not start; see {self.logs}")

    def teardown(self) -> None:
        for name in list(self.running):
            self.stop(name)
        asyncio.run(drop_database())
        rabbitmqctl("delete_vhost", NAME)
        shutil.rmtree(self.maildir, ignore_errors=True)

    def mail_count(self) -> int:
        folder = self.maildir / "new"
        return sum(1 for _ in os.scandir(folder)) if folder.is_dir() else 0

    def wait_mail_count(self, target: int, timeout: float) -> float:
        """Poll the Maildir until it holds `target` mails; returns when that was seen."""
        deadline = time.monotonic() + timeout
        while (count := self.mail_count()) < target:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {count} of {target} mails after {timeout}s")
            time.sleep(0.05)
        return time.monotonic()

    def keys(self) -> dict[str, int]:
        """X-Doorbuster-Key -> how many mails carry it (raw header scan; no parsing)."""
        counts: dict[str, int] = {}
        marker = b"\nX-Doorbuster-Key: "
        for entry in os.scandir(self.maildir / "new"):
            with open(entry.path, "rb") as file:
                head = file.read(2048)
            at = head.find(marker)
            if at >= 0:
                key = head[at + len(marker) : head.index(b"\n", at + len(marker))].decode()
                counts[key] = counts.get(key, 0) + 1
        return counts
