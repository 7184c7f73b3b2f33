"""A three-node RabbitMQ cluster on this machine, from Debian's package, for the quorum-queue
fault scenarios (`make faults`) and for trying `QUEUE_TYPE=quorum` by hand.

Each node has its own name, AMQP, management and distribution ports and data folder under
`var/rabbit-cluster<suffix>/`; they share an Erlang cookie and the machine's epmd, and are
joined into one cluster. The machine's own broker on :5672 is not touched.

    python -m devtools.rabbit_cluster start     # three nodes joined, prints their URLs
    python -m devtools.rabbit_cluster status
    python -m devtools.rabbit_cluster stop      # stops the nodes, keeps the data
    python -m devtools.rabbit_cluster destroy   # stops the nodes and removes their data

Ports (node i = 1, 2, 3, plus `offset`): AMQP 5700+i, management 15700+i, distribution
25700+i. A node starts in 5-20 s; the whole cluster in under a minute.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import httpx

ROOT = Path(__file__).resolve().parents[1]
SERVER = Path(os.environ.get("RABBITMQ_SBIN", "/usr/lib/rabbitmq/bin")) / "rabbitmq-server"
CTL = Path(os.environ.get("RABBITMQ_SBIN", "/usr/lib/rabbitmq/bin")) / "rabbitmqctl"
PLUGINS = "[rabbitmq_management]."


@dataclass(frozen=True)
class Node:
    index: int
    offset: int
    folder: Path

    @property
    def name(self) -> str:
        return f"doorbuster-c{self.index}-{self.offset}@{socket.gethostname().split('.')[0]}"

    @property
    def amqp_port(self) -> int:
        return 5700 + self.offset + self.index

    @property
    def management_port(self) -> int:
        return 15700 + self.offset + self.index

    @property
    def dist_port(self) -> int:
        return 25700 + self.offset + self.index

    @property
    def base(self) -> Path:
        return self.folder / f"node{self.index}"

    def url(self, vhost: str = "", user: str = "guest", password: str = "guest") -> str:  # noqa: S107
        return f"amqp://{user}:{password}@127.0.0.1:{self.amqp_port}/{vhost}"

    @property
    def management_url(self) -> str:
        return f"http://127.0.0.1:{self.management_port}"


@dataclass
class Cluster:
    """Three local nodes; `start()` creates and joins them, `kill(node)` is a power cut."""

    offset: int = 0
    size: int = 3
    folder: Path = field(default_factory=lambda: ROOT / "var" / "rabbit-cluster")

    @property
    def nodes(self) -> list[Node]:
        return [Node(i, self.offset, self.folder) for i in range(1, self.size + 1)]

    @property
    def home(self) -> Path:
        return self.folder / "home"

    def env(self, node: Node) -> dict[str, str]:
        base = node.base
        return {
            **os.environ,
            # The cookie the nodes (and rabbitmqctl) authenticate each other with.
            "HOME": str(self.home),
            "RABBITMQ_NODENAME": node.name,
            "RABBITMQ_DIST_PORT": str(node.dist_port),
            "RABBITMQ_NODE_PORT": str(node.amqp_port),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_PID_FILE": str(base / "rabbit.pid"),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(base / "advanced.config"),
        }

    def ctl(self, node: Node, *args: str, timeout: float = 90) -> subprocess.CompletedProcess:
        return subprocess.run(  # noqa: S603 - our own rabbitmqctl, our arguments
            [str(CTL), "-q", "-n", node.name, *args],
            env=self.env(node),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def _check(self, node: Node, *args: str, timeout: float = 90) -> str:
        result = self.ctl(node, *args, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(
                f"rabbitmqctl -n {node.name} {' '.join(args)}: {result.stderr or result.stdout}"
            )
        return result.stdout

    def _prepare(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        cookie = self.home / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text(secrets.token_hex(16).upper())
            cookie.chmod(0o400)
        for node in self.nodes:
            (node.base / "log").mkdir(parents=True, exist_ok=True)
            (node.base / "mnesia").mkdir(parents=True, exist_ok=True)
            (node.base / "rabbitmq.conf").write_text(
                "\n".join(
                    [
                        f"listeners.tcp.default = 127.0.0.1:{node.amqp_port}",
                        f"management.tcp.port = {node.management_port}",
                        "management.tcp.ip = 127.0.0.1",
                        "loopback_users = none",
                        # Stay out of the machine broker's way on a shared box.
                        "vm_memory_high_watermark.relative = 0.2",
                        "disk_free_limit.absolute = 200MB",
                        "",
                    ]
                )
            )
            (node.base / "enabled_plugins").write_text(PLUGINS + "\n")
            (node.base / "advanced.config").write_text("[].\n")

    def running(self, node: Node) -> bool:
        return self.ctl(node, "status", timeout=30).returncode == 0

    def start_node(self, node: Node) -> None:
        if self.running(node):
            return
        subprocess.run(  # noqa: S603 - our own rabbitmq-server
            [str(SERVER), "-detached"],
            env=self.env(node),
            check=True,
            capture_output=True,
            timeout=60,
        )
        # `-detached` returns before the node is up: wait for its pid file, then for the app.
        self._check(node, "wait", str(node.base / "rabbit.pid"), "--timeout", "120", timeout=150)

    def start(self) -> None:
        """Start every node and join the second and third to the first (once)."""
        self._prepare()
        for node in self.nodes:
            self.start_node(node)
        first, *others = self.nodes
        for node in others:
            if first.name in self.members(node):
                continue
            self._check(node, "stop_app")
            self._check(node, "join_cluster", first.name)
            self._check(node, "start_app")
        missing = set(n.name for n in self.nodes) - set(self.members(first))
        if missing:
            raise RuntimeError(f"nodes did not join the cluster: {sorted(missing)}")

    def members(self, node: Node) -> list[str]:
        """The running members `node` sees (empty when it is down)."""
        result = self.ctl(node, "eval", "rabbit_nodes:all_running().", timeout=30)
        if result.returncode != 0:
            return []
        text = result.stdout.strip().strip("[]")
        return [part.strip().strip("'") for part in text.split(",") if part.strip()]

    def kill(self, node: Node) -> None:
        """kill -9 the node's Erlang VM: no goodbye to its peers or clients."""
        pid = self.pid(node)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and _alive(pid):
                time.sleep(0.1)

    def pid(self, node: Node) -> int | None:
        pid_file = node.base / "rabbit.pid"
        if pid_file.exists():
            with contextlib.suppress(ValueError):
                pid = int(pid_file.read_text().strip())
                if _alive(pid):
                    return pid
        return None

    def stop_node(self, node: Node) -> None:
        if self.running(node):
            self.ctl(node, "stop", timeout=90)
        self.kill(node)

    def stop(self) -> None:
        for node in reversed(self.nodes):
            self.stop_node(node)

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def any_running(self) -> Node:
        for node in self.nodes:
            if self.running(node):
                return node
        raise RuntimeError("no node of the cluster is running")

    def add_vhost(self, vhost: str) -> None:
        node = self.any_running()
        self.ctl(node, "delete_vhost", vhost)
        self._check(node, "add_vhost", vhost)
        self._check(node, "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")

    def queue_leader(self, vhost: str, queue: str) -> Node:
        """The node that leads a quorum queue now."""
        out = self._check(
            self.any_running(), "list_queues", "-p", vhost, "name", "leader", "--no-table-headers"
        )
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == queue:
                return next(n for n in self.nodes if n.name == parts[1])
        raise LookupError(f"queue {queue} not found in vhost {vhost}")

    def queue_arguments(self, vhost: str, queue: str) -> dict[str, object]:
        """A queue's declared arguments, as the management API of a running node shows them."""
        node = self.any_running()
        url = f"{node.management_url}/api/queues/{quote(vhost, safe='')}/{quote(queue, safe='')}"
        response = httpx.get(url, auth=("guest", "guest"), timeout=10)
        response.raise_for_status()
        return response.json()["arguments"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(FileNotFoundError):
        # A zombie (killed, not yet reaped) counts as gone.
        return "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
    return False


@contextlib.contextmanager
def running_cluster(offset: int = 0, folder: Path | None = None) -> Iterator[Cluster]:
    cluster = Cluster(offset=offset, folder=folder or ROOT / "var" / f"rabbit-cluster{offset}")
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.destroy()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.rabbit_cluster", description=__doc__)
    parser.add_argument("action", choices=["start", "stop", "status", "destroy"])
    parser.add_argument("--offset", type=int, default=0, help="added to every port")
    args = parser.parse_args(argv)
    cluster = Cluster(offset=args.offset, folder=ROOT / "var" / f"rabbit-cluster{args.offset}")
    if args.action == "start":
        cluster.start()
    elif args.action == "stop":
        cluster.stop()
        return 0
    elif args.action == "destroy":
        cluster.destroy()
        return 0
    for node in cluster.nodes:
        state = "running" if cluster.running(node) else "down"
        print(f"{node.name}  {state}  {node.url()}  {node.management_url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
