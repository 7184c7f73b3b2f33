"""A real Prometheus (Debian's `prometheus` binary) scraping a running stack with the shipped
scrape config, for tests that must see what an operator's Prometheus would see.

The shipped `deploy/prometheus/prometheus.yml` names `make up`'s default ports; this rewrites
each target to the stack's port (a stack on a test slot runs elsewhere), shortens the
scrape and evaluation intervals to one second, and keeps everything else: the jobs, their
paths and parameters, the rule files (copied beside the rewritten config). Storage is a
temporary folder; the Debian package's own service is never used.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import httpx
import yaml

from devtools.plan import Ports

SHIPPED = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
POOL_PORT_SPAN = 100  # pool metrics ports run from Ports.metrics to Ports.metrics + 99


class PromQLError(AssertionError):
    """Prometheus refused a query (parse or execution error)."""


def port_map(stack_ports: Ports, defaults: Ports = Ports()) -> dict[int, int]:
    """`make up`'s default port -> the stack's port, for every API, emulator, sink and pool."""
    mapping = {getattr(defaults, f.name): getattr(stack_ports, f.name) for f in fields(Ports)}
    for offset in range(POOL_PORT_SPAN):
        mapping[defaults.metrics + offset] = stack_ports.metrics + offset
    return mapping


def local_config(shipped: dict[str, Any], stack_ports: Ports, interval: str = "1s") -> dict:
    """The shipped config, with its targets moved to the stack's ports."""
    mapping = port_map(stack_ports)
    config = yaml.safe_load(yaml.safe_dump(shipped))  # a deep copy
    config["global"] = {**config.get("global", {}), "scrape_interval": interval}
    config["global"]["evaluation_interval"] = interval
    for job in config["scrape_configs"]:
        for group in job.get("static_configs", []):
            group["targets"] = [_moved(target, mapping) for target in group["targets"]]
    return config


def _moved(target: str, mapping: dict[int, int]) -> str:
    host, _, port = target.rpartition(":")
    return f"{host}:{mapping.get(int(port), int(port))}"


@dataclass
class Prometheus:
    url: str
    client: httpx.Client

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result vector; a refused query raises PromQLError."""
        response = self.client.get(f"{self.url}/api/v1/query", params={"query": expr})
        body = response.json()
        if response.status_code != 200 or body.get("status") != "success":
            raise PromQLError(f"{expr!r}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]["result"]

    def targets(self) -> list[dict[str, Any]]:
        return self.client.get(f"{self.url}/api/v1/targets").json()["data"]["activeTargets"]

    def wait_for(self, expr: str, timeout: float = 60) -> list[dict[str, Any]]:
        """The first non-empty result of `expr` within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(expr)
            if result or time.monotonic() > deadline:
                return result
            time.sleep(0.5)


@contextlib.contextmanager
def running_prometheus(stack_ports: Ports, port: int, binary: str = "prometheus") -> Iterator:
    """Prometheus on 127.0.0.1:`port` scraping the stack on `stack_ports`, for the block."""
    executable = shutil.which(binary)
    if executable is None:
        raise FileNotFoundError(f"{binary} not installed (make test installs Debian's package)")
    shipped = yaml.safe_load((SHIPPED / "prometheus.yml").read_text())
    with tempfile.TemporaryDirectory(prefix="doorbuster-prometheus-") as folder:
        work = Path(folder)
        for rule_file in shipped.get("rule_files", []):
            shutil.copy(SHIPPED / rule_file, work / rule_file)
        config = work / "prometheus.yml"
        config.write_text(yaml.safe_dump(local_config(shipped, stack_ports)))
        log = (work / "prometheus.log").open("wb")
        process = subprocess.Popen(
            [
                executable,
                f"--config.file={config}",
                f"--storage.tsdb.path={work / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--storage.tsdb.retention.time=1h",
            ],
            stdout=log,
            stderr=log,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            with httpx.Client(timeout=10) as client:
                _wait_ready(client, url, process, work / "prometheus.log")
                yield Prometheus(url, client)
        finally:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()


def _wait_ready(client: httpx.Client, url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"prometheus exited: {log.read_text()[-2000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if client.get(f"{url}/-/ready").status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"prometheus not ready in 30 s: {log.read_text()[-2000:]}")
