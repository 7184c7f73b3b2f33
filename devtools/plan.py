"""The processes of a whole local stack: three APIs, four pools (or the autoscaler that runs
them), the emulator and the sink.

`make up` runs this plan under honcho; the end-to-end tests run the same plan on their own
ports, database names and RabbitMQ vhost, so what is tested is what a developer starts.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from workers.pools import POOLS, Pool, instance_argv

SERVICES = ("orders", "inventory", "notifications")


@dataclass(frozen=True)
class Ports:
    orders: int = 8001
    inventory: int = 8002
    notifications: int = 8003
    stripe: int = 12111
    smtp: int = 1025
    # Base of the pools' metrics ports: base + the pool's offset + the instance index.
    metrics: int = 9100

    def service(self, name: str) -> int:
        return int(getattr(self, name))


@dataclass(frozen=True)
class Process:
    name: str
    argv: list[str]
    health_url: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    metrics_url: str | None = None


def parse_pools(spec: str) -> dict[Pool, int]:
    """`"payments=2 bulk=1"` -> processes per pool; pools not named get one each, `=0` none."""
    counts = {pool: 1 for pool in Pool}
    for part in spec.replace(",", " ").split():
        name, _, count = part.partition("=")
        try:
            pool, number = Pool(name.strip()), int(count or 1)
        except ValueError:
            known = " ".join(pool.value for pool in Pool)
            raise ValueError(
                f"POOLS: {part!r} is not <pool>=<count> with a pool among: {known}"
            ) from None
        if number < 0:
            raise ValueError(f"POOLS: {part!r}: a count cannot be negative")
        counts[pool] = number
    return counts


def parse_autoscale(spec: str) -> list[Pool]:
    """`AUTOSCALE`: empty or 0 -> none; 1 (yes, true, all) -> every pool; else pool names."""
    spec = spec.strip().lower()
    if spec in ("", "0", "no", "false"):
        return []
    if spec in ("1", "yes", "true", "all"):
        return list(Pool)
    try:
        return [Pool(name) for name in spec.replace(",", " ").split()]
    except ValueError:
        known = " ".join(pool.value for pool in Pool)
        raise ValueError(f"AUTOSCALE: {spec!r} is not 1 or pool names among: {known}") from None


def autoscaled_probes(
    ports: Ports, minimums: dict[Pool, int], host: str = "127.0.0.1"
) -> list[Process]:
    """The workers an autoscaler starts at once (each pool's minimum), as probes only: the
    autoscaler starts them, `make up` waits for their /readyz before it says it is ready."""
    probes = []
    for pool, count in minimums.items():
        for index in range(count):
            port = ports.metrics + POOLS[pool].metrics_offset + index
            probes.append(
                Process(
                    f"{pool.value}-pool-{index + 1}",
                    [],
                    f"http://{host}:{port}/readyz",
                    metrics_url=f"http://{host}:{port}/metrics",
                )
            )
    return probes


def plan(
    ports: Ports,
    pools: dict[Pool, int],
    with_emulator: bool,
    with_sink: bool,
    maildir: str,
    host: str = "127.0.0.1",
    python: str = sys.executable,
    stripe_state_file: str | None = None,
    autoscaled: Sequence[Pool] = (),
    autoscale_args: Sequence[str] = (),
) -> list[Process]:
    """`stripe_state_file`: where the emulator keeps its state across restarts (`make up`);
    None keeps it in memory (tests and benchmarks start from an empty account).
    `autoscaled`: pools that get no fixed processes; one `autoscale` process (ops/autoscale.py)
    starts and stops theirs, on the same metrics ports, with `autoscale_args` added."""
    processes: list[Process] = []
    if with_emulator:
        keep = ["--state-file", stripe_state_file] if stripe_state_file else []
        processes.append(
            Process(
                "stripe",
                [
                    python,
                    "-m",
                    "devtools.stripe_emulator",
                    "--host",
                    host,
                    "--port",
                    str(ports.stripe),
                    *keep,
                ],
                f"http://{host}:{ports.stripe}/_emulator/healthz",
                # Signed webhooks go to the orders API, as Stripe's would.
                {"STRIPE_EMULATOR_WEBHOOK_URL": f"http://{host}:{ports.orders}/v1/stripe/webhook"},
            )
        )
    if with_sink:
        processes.append(
            Process(
                "smtp",
                [
                    python,
                    "-m",
                    "devtools.smtp_sink",
                    "--host",
                    host,
                    "--port",
                    str(ports.smtp),
                    "--maildir",
                    maildir,
                ],
                f"tcp://{host}:{ports.smtp}",
            )
        )
    for service in SERVICES:
        port = ports.service(service)
        processes.append(
            Process(
                f"{service}-api",
                [
                    python,
                    "-m",
                    "uvicorn",
                    f"services.{service}.main:create_app",
                    "--factory",
                    "--host",
                    host,
                    "--port",
                    str(port),
                    "--no-access-log",
                    # Longer than any client's or load balancer's idle timeout, so the server
                    # never closes a kept-alive connection a client is about to reuse.
                    "--timeout-keep-alive",
                    "75",
                ],
                f"http://{host}:{port}/readyz",
            )
        )
    for pool, count in pools.items():
        for index in range(0 if pool in autoscaled else count):
            name = f"{pool.value}-pool-{index + 1}" if count > 1 else f"{pool.value}-pool"
            port = ports.metrics + POOLS[pool].metrics_offset + index
            processes.append(
                Process(
                    name,
                    instance_argv(pool, name, port, python),
                    f"http://{host}:{port}/readyz",
                    metrics_url=f"http://{host}:{port}/metrics",
                )
            )
    if autoscaled:
        managed = " ".join(pool.value for pool in autoscaled)
        processes.append(
            Process(
                "autoscale",
                [
                    python,
                    "-m",
                    "ops.autoscale",
                    "--pools",
                    managed,
                    "--metrics-base",
                    str(ports.metrics),
                    *autoscale_args,
                ],
            )
        )
    schedule = os.path.join(os.path.dirname(maildir), "celerybeat-schedule")
    processes.append(Process("beat", [python, "-m", "workers", "beat", "--schedule", schedule]))
    return processes
