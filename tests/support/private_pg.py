"""A PostgreSQL cluster of the test's own, for faults that restart the database server.

The machine's cluster on :5432 is shared by every checkout's suites and benchmarks (and CI):
restarting it would break their runs. This one lives in `var/pg-faults<slot>/`, listens on
127.0.0.1:5433+slot with trust auth, and is the test's to stop, restart and throw away.
Binaries: `PG_BIN` (default the newest /usr/lib/postgresql/<version>/bin). PostgreSQL refuses
to run as root, so as root every command runs as `postgres`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


def pg_bin() -> Path:
    configured = os.environ.get("PG_BIN")
    if configured:
        return Path(configured)
    versions = sorted(Path("/usr/lib/postgresql").iterdir(), key=lambda p: int(p.name))
    return versions[-1] / "bin"


@dataclass
class PrivateCluster:
    data: Path
    port: int

    @property
    def server(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}"

    def _run(self, tool: str, *args: str, timeout: float = 120) -> None:
        argv = [str(pg_bin() / tool), *args]
        if os.geteuid() == 0:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"{tool} {' '.join(args)} failed: {result.stderr or result.stdout}")

    def create(self) -> None:
        """A fresh cluster (whatever a previous run left is removed first), started."""
        self.destroy()
        self.data.mkdir(parents=True)
        if os.geteuid() == 0:
            shutil.chown(self.data, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync")
        self.start()

    def start(self) -> None:
        # Only TCP on loopback, its socket in its own folder: nothing shared with :5432.
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data} -c fsync=off"
        log = str(self.data / "server.log")
        self._run("pg_ctl", "-D", str(self.data), "-l", log, "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(RuntimeError):
                self.stop("immediate")
        shutil.rmtree(self.data, ignore_errors=True)
