"""The plain recipe as a benchmark arm: its own database and vhost, its API and its worker,
pointed at the emulator and the sink of the stack it runs beside."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
from sqlalchemy import create_engine

from bench.plain_celery.tables import metadata

PG_SERVER = "postgresql://postgres@127.0.0.1:5432"
SLOT = int(os.environ.get("DOORBUSTER_TEST_SLOT", "9"))
NAME = f"doorbuster_plain{SLOT}"
VHOST = f"doorbuster-plain{SLOT}"
API_PORT = 38201 + SLOT * 10


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, timeout=60, check=False)


async def recreate_database() -> None:
    connection = await asyncpg.connect(f"{PG_SERVER}/postgres")
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{NAME}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{NAME}"')
    finally:
        await connection.close()


@dataclass
class PlainArm:
    """Start with `start(stripe_url, smtp_port)`; `stop()` ends both processes."""

    logs: Path
    concurrency: int = 16
    running: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def database_url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:5432/{NAME}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{API_PORT}"

    def prepare(self) -> None:
        asyncio.run(recreate_database())
        engine = create_engine(self.database_url)
        metadata.create_all(engine)
        engine.dispose()
        rabbitmqctl("delete_vhost", VHOST)
        rabbitmqctl("add_vhost", VHOST)
        rabbitmqctl("set_permissions", "-p", VHOST, "guest", ".*", ".*", ".*")

    def start(self, stripe_url: str, smtp_port: int) -> None:
        self.prepare()
        env = {
            **os.environ,
            "PLAIN_BROKER_URL": f"amqp://guest:guest@127.0.0.1:5672/{VHOST}",
            "PLAIN_DATABASE_URL": self.database_url,
            "STRIPE_API_BASE": stripe_url,
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(smtp_port),
        }
        py = sys.executable
        api = ["-m", "uvicorn", "bench.plain_celery.api:create_app", "--factory"]
        self._spawn("plain-api", [py, *api, "--no-access-log", "--port", str(API_PORT)], env)
        worker = ["-m", "celery", "-A", "bench.plain_celery.tasks", "worker"]
        flags = ["--concurrency", str(self.concurrency), "--loglevel", "WARNING"]
        self._spawn("plain-worker", [py, *worker, *flags], env)
        self._wait_ready()

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - lives with the process
        self.running[name] = subprocess.Popen(argv, env=env, stdout=log, stderr=log)

    def _wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.api_url}/healthz", timeout=1).status_code == 200:
                    time.sleep(5)  # the prefork children start and connect
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"the plain arm did not start; see {self.logs}")

    def pids(self) -> dict[str, int]:
        return {name: popen.pid for name, popen in self.running.items()}

    def stop(self) -> None:
        for popen in self.running.values():
            popen.send_signal(signal.SIGTERM)
        for popen in self.running.values():
            try:
                popen.wait(30)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait()
        self.running.clear()

    async def fetch(self, query: str, *args: object) -> list[asyncpg.Record]:
        connection = await asyncpg.connect(f"{PG_SERVER}/{NAME}")
        try:
            return await connection.fetch(query, *args)
        finally:
            await connection.close()
