"""`make up`: check the broker and the database, migrate, start the whole stack in the
foreground under honcho, print where to look. Ctrl-C stops every process.

Environment: RABBITMQ_URL, DATABASE_URL (or ORDERS_/INVENTORY_/NOTIFICATIONS_DATABASE_URL),
STRIPE_API_BASE (set: no emulator is started), SMTP_HOST/SMTP_PORT (SMTP_HOST set: no sink is
started), POOLS (processes per pool, e.g. "payments=2 bulk=1"), AUTOSCALE (1: the pools'
processes are started and stopped by ops/autoscale.py; or pool names; AUTOSCALE_ARGS adds its
options, e.g. "--limits payments=1:4 --scale-in-window 60"), UP_PORT_OFFSET (added to every
port, so a second stack can run beside the first on one machine).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import fields
from urllib.parse import urlsplit

from honcho.manager import Manager
from honcho.printer import Message, Printer

from devtools.dkim_dev_key import dev_dkim_env
from devtools.plan import (
    Ports,
    Process,
    autoscaled_probes,
    parse_autoscale,
    parse_pools,
    plan,
)
from devtools.readiness import wait_until_ready
from ops.autoscale import minimums
from shared.infra.settings import get_settings
from workers.pools import Pool

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The emulator's charges outlive a restart of `make up`, as Stripe's do (`make reset` empties it).
STRIPE_STATE_FILE = os.path.join(ROOT, "var", "stripe-emulator.json")
# On this 2-core machine a cold `make up` is ready in about 40 s.
READY_TIMEOUT_SECONDS = 180
_STOPPED = re.compile(r"^(?P<name>\S+) stopped \(rc=(?P<rc>-?\d+)\)")


class WatchingPrinter(Printer):
    """honcho's printer, noting the first process that stopped (honcho then stops the rest)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.first_stopped: tuple[str, str] | None = None
        self.interrupted = False

    def write(self, message: Message) -> None:
        super().write(message)
        if message.name != "system" or self.first_stopped or self.interrupted:
            return
        text = message.data.decode() if isinstance(message.data, bytes) else message.data
        if text.startswith(("SIGINT", "SIGTERM")):  # Ctrl-C: every process stops, none failed
            self.interrupted = True
        elif stopped := _STOPPED.match(text):
            self.first_stopped = (stopped["name"], stopped["rc"])

    def gave_up(self) -> bool:
        return self.interrupted or self.first_stopped is not None


def answers(url: str, default_port: int) -> bool:
    parts = urlsplit(url.replace("+asyncpg", ""))
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), 2
        ):
            return True
    except OSError:
        return False


def ensure_dependencies() -> None:
    """Use RabbitMQ and PostgreSQL where they answer; else start them with Docker; else say how."""
    settings = get_settings()
    missing = [
        name
        for name, url, port in (
            ("rabbitmq", settings.rabbitmq_url, 5672),
            ("postgres", settings.database_url, 5432),
        )
        if not answers(url, port)
    ]
    if not missing:
        return
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "info"], capture_output=True).returncode == 0:  # noqa: S603
        print(f"starting {', '.join(missing)} from compose.yaml")
        subprocess.run([docker, "compose", "up", "-d", "--wait", *missing], check=True, cwd=ROOT)  # noqa: S603
        return
    sys.exit(
        f"{' and '.join(missing)} not reachable and no Docker engine runs.\n"
        "Install and start them (Debian: apt-get install rabbitmq-server postgresql), or point "
        "RABBITMQ_URL / DATABASE_URL at running ones."
    )


def ports_from_env() -> Ports:
    return ports_at(int(os.environ.get("UP_PORT_OFFSET", "0")))


def ports_at(offset: int) -> Ports:
    defaults = Ports()
    return Ports(**{port.name: getattr(defaults, port.name) + offset for port in fields(Ports)})


def local_endpoints(ports: Ports, with_emulator: bool, with_sink: bool) -> dict[str, str]:
    """Point the services at the emulator and sink this plan starts, on whatever ports it
    starts them (the settings' defaults only match without an offset)."""
    endpoints = {}
    if with_emulator:
        endpoints["STRIPE_API_BASE"] = f"http://127.0.0.1:{ports.stripe}"
    if with_sink:
        endpoints |= {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(ports.smtp)}
    return endpoints


def main() -> None:
    started = time.monotonic()
    ensure_dependencies()
    ports = ports_from_env()
    with_emulator = "STRIPE_API_BASE" not in os.environ
    with_sink = "SMTP_HOST" not in os.environ
    env = {**os.environ, **local_endpoints(ports, with_emulator, with_sink)}
    # Mail is signed locally too, with a key made under var/dkim/ (unless one is configured),
    # and its unsubscribe links point at this notifications API.
    env |= dev_dkim_env(os.environ)
    env.setdefault("UNSUBSCRIBE_BASE_URL", f"http://127.0.0.1:{ports.notifications}")
    maildir = os.path.join(ROOT, "var", "mail")
    os.makedirs(os.path.dirname(maildir), exist_ok=True)
    autoscale_args = shlex.split(os.environ.get("AUTOSCALE_ARGS", ""))
    try:
        pools = parse_pools(os.environ.get("POOLS", ""))
        autoscaled = parse_autoscale(os.environ.get("AUTOSCALE", ""))
        managed = ["--pools", " ".join(pool.value for pool in autoscaled)]
        probes = (
            autoscaled_probes(ports, minimums([*managed, *autoscale_args])) if autoscaled else []
        )
    except ValueError as exc:
        sys.exit(str(exc))
    processes = plan(
        ports,
        pools,
        with_emulator,
        with_sink,
        maildir,
        stripe_state_file=STRIPE_STATE_FILE,
        autoscaled=autoscaled,
        autoscale_args=autoscale_args,
    )
    if taken := taken_ports([*processes, *probes]):
        sys.exit(ports_taken(taken))
    subprocess.run([sys.executable, "-m", "shared.infra.migrate"], check=True, cwd=ROOT)
    printer = WatchingPrinter(sys.stdout)
    manager = Manager(printer)
    for process in processes:
        manager.add_process(
            process.name, shlex.join(process.argv), env={**env, **process.env}, cwd=ROOT
        )
    print(banner(ports, with_emulator, with_sink, maildir), flush=True)
    for process in [*processes, *probes]:
        if process.metrics_url:
            print(f"  {process.name:<18} {process.metrics_url}", flush=True)
    if autoscaled:
        print(autoscale_line(autoscaled, ports), flush=True)
    watch = threading.Thread(
        target=announce_readiness,
        args=([*processes, *probes], printer, ports, started),
        daemon=True,
    )
    watch.start()
    manager.loop()
    watch.join(timeout=2)
    sys.exit(manager.returncode)


def announce_readiness(
    processes: list[Process], printer: WatchingPrinter, ports: Ports, started: float
) -> None:
    """One line when every process answers its probe, or one naming those that did not."""
    pending = wait_until_ready(processes, printer.gave_up, READY_TIMEOUT_SECONDS)
    if printer.interrupted:
        return
    if printer.first_stopped:
        print(not_started(*printer.first_stopped), file=sys.stderr, flush=True)
    elif pending:
        names = ", ".join(f"{p.name} ({p.health_url} does not answer)" for p in pending)
        print(f"==> make up: not ready after {READY_TIMEOUT_SECONDS} s: {names}", flush=True)
    else:
        print(ready_line(ports, time.monotonic() - started), flush=True)


def listen_address(process: Process) -> tuple[str, int] | None:
    """Where a process listens: the host and port of its probe (an API's, a pool's metrics
    port, the emulator's, the sink's); None for one that listens nowhere (beat)."""
    url = process.health_url or process.metrics_url
    if not url:
        return None
    parts = urlsplit(url)
    return (parts.hostname or "127.0.0.1", parts.port) if parts.port else None


def taken_ports(processes: list[Process]) -> list[tuple[Process, int, str]]:
    """The processes whose port another program holds already, each with the port and who holds
    it (as far as `ss` can tell). Checked before anything starts: an API that cannot bind exits
    only after its start-up, among a hundred lines of the others' start-up."""
    taken = []
    for process in processes:
        address = listen_address(process)
        if address is None:
            continue
        with socket.socket() as probe:
            # As uvicorn, aiosmtpd and the metrics server bind: a port in TIME_WAIT is free.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError:
                taken.append((process, address[1], holder(address[1])))
    return taken


def holder(port: int) -> str:
    """`ss`'s name for the program listening on `port` ("python3 (pid 1234)"), or ""."""
    ss = shutil.which("ss")
    if not ss:
        return ""
    try:
        listing = subprocess.run(  # noqa: S603
            [ss, "-ltnpH", f"sport = :{port}"], capture_output=True, text=True, timeout=5
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""
    if found := re.search(r'users:\(\("(?P<name>[^"]+)",pid=(?P<pid>\d+)', listing):
        return f"{found['name']} (pid {found['pid']})"
    return ""


def ports_taken(taken: list[tuple[Process, int, str]]) -> str:
    lines = [
        f"==> make up: {process.name} did not start: port {port} is already in use"
        f"{f' by {who}' if who else ''}"
        for process, port, who in taken
    ]
    return "\n".join(
        [
            *lines,
            "    Nothing was started. Another `make up` (or an old process of one) may still "
            "run: stop it (`ss -ltnp` names what listens), or start this one beside it with "
            "UP_PORT_OFFSET=10000.",
        ]
    )


def ready_line(ports: Ports, seconds: float) -> str:
    return (
        f"==> Doorbuster is ready ({seconds:.0f} s): "
        f"orders http://127.0.0.1:{ports.orders}/docs  "
        f"inventory http://127.0.0.1:{ports.inventory}/docs  "
        f"notifications http://127.0.0.1:{ports.notifications}/docs  "
        "(keys dev-storefront, dev-admin; Ctrl-C stops all)"
    )


def not_started(name: str, returncode: str) -> str:
    return (
        f"==> make up: {name} did not start (exited with code {returncode}); "
        f"its lines above say why, and every other process was stopped"
    )


def autoscale_line(autoscaled: list[Pool], ports: Ports) -> str:
    names = ", ".join(pool.value for pool in autoscaled)
    return (
        f"  autoscale          {names}: workers started and stopped by KEDA's rule (the "
        f"minimum of each above), each on http://127.0.0.1:{ports.metrics}+<pool offset>"
        "+<instance>/metrics; its lines `autoscale decision` say why"
    )


def banner(ports: Ports, with_emulator: bool, with_sink: bool, maildir: str) -> str:
    lines = [
        "Doorbuster is starting. Where to look:",
        f"  orders API         http://127.0.0.1:{ports.orders}/docs",
        f"  inventory API      http://127.0.0.1:{ports.inventory}/docs",
        f"  notifications API  http://127.0.0.1:{ports.notifications}/docs",
        "  RabbitMQ           http://127.0.0.1:15672 (guest/guest, if the management plugin is on)",
        f"  Stripe emulator    http://127.0.0.1:{ports.stripe}"
        if with_emulator
        else "  Stripe             $STRIPE_API_BASE",
        f"  SMTP sink          127.0.0.1:{ports.smtp}, mail in {maildir}"
        if with_sink
        else "  SMTP               $SMTP_HOST",
        "  API keys (development): storefront `dev-storefront`, admin `dev-admin`",
        "  ops CLI            .venv/bin/doorbuster queues | pools | dlq list <queue>",
        "  Ctrl-C stops everything. Pool metrics (/metrics, /healthz, /readyz):",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
