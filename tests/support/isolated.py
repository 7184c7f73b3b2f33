"""One more API process beside the test stack, with its own settings: a dedicated database
path (through a proxy the test can cut), a dedicated vhost, tiny shedding limits, production
keys. What it breaks, it breaks for itself only."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from devtools.harness.stack import ROOT, SLOT, rabbitmqctl


def isolated_port(index: int) -> int:
    return 18011 + index + SLOT * 100


@dataclass
class ApiProcess:
    service: str
    port: int
    env: dict[str, str]
    log: Path
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> None:
        argv = [
            sys.executable, "-m", "uvicorn", f"services.{self.service}.main:create_app",
            "--factory", "--host", "127.0.0.1", "--port", str(self.port), "--no-access-log",
        ]  # fmt: skip
        output = open(self.log, "ab")  # noqa: SIM115 - lives as long as the process
        self.popen = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=output, stderr=output)
        deadline = time.monotonic() + timeout
        while True:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.service} exited; see {self.log}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.service} not ready in {timeout}s; see {self.log}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.popen is not None:
            self.popen.terminate()
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def fresh_vhost(name: str) -> None:
    rabbitmqctl("delete_vhost", name)
    if rabbitmqctl("add_vhost", name).returncode != 0:
        raise RuntimeError(f"cannot create vhost {name}")
    rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
