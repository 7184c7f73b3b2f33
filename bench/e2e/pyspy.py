"""Where each process's CPU goes, from py-spy: record every Python process of an arm during a
window, then fold the samples by library (SQLAlchemy, asyncpg, Celery/kombu, aio-pika/pamqp,
Stripe, httpx, logging, ...) and by function.

py-spy runs with `--gil`: it samples only the thread holding the GIL, which a thread waiting in
epoll, a socket or a lock has released (its idle detection alone counted event loops' select as
busy), so a process's share of samples is close to a share of its Python CPU time. The
recorders run in processes of their own, not counted in the arm's CPU.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

# "function (path/to/file.py:123)" in py-spy's raw (collapsed) format
FRAME = re.compile(r"^(?P<function>.*?) \((?P<path>[^()]*?)(?::\d+)?\)$")
OURS = ("services", "shared", "workers", "bench", "devtools", "deploy", "ops")
NATIVE = "(no Python frame)"


def py_spy() -> str:
    found = Path(sys.executable).with_name("py-spy")
    return str(found) if found.exists() else (shutil.which("py-spy") or "py-spy")


def start(folder: Path, pids: dict[str, int], seconds: float) -> list[subprocess.Popen[bytes]]:
    """One py-spy per process, for `seconds`, each writing `<name>.txt` (raw stacks)."""
    folder.mkdir(parents=True, exist_ok=True)
    recorders = []
    for name, pid in pids.items():
        argv = [py_spy(), "record", "--format", "raw", "--rate", "100", "--gil"]
        argv += ["--subprocesses", "--duration", str(int(seconds)), "--pid", str(pid)]
        argv += ["--output", str(folder / f"{name}.txt")]
        log = open(folder / f"{name}.log", "wb")  # noqa: SIM115 - lives with the recorder
        recorders.append(subprocess.Popen(argv, stdout=log, stderr=log))
    return recorders


def library(path: str) -> str:
    """The library a frame's file belongs to. py-spy names files relative to their sys.path
    entry (`asyncpg/connection.py`, `selectors.py`, `services/orders/handlers.py`): a package
    or stdlib module is its first part; ours keep two parts (`services.orders`, `shared.infra`)."""
    parts = Path(path).parts
    for top in OURS:
        if top in parts:
            index = parts.index(top)
            return ".".join(parts[index : index + 2]).removesuffix(".py")
    return parts[0].removesuffix(".py") if parts else NATIVE


@dataclass
class Profile:
    samples: int
    by_library: Counter[str]
    by_function: Counter[str]

    @classmethod
    def read(cls, path: Path) -> Profile:
        """Self time: each sample counts for the innermost frame of its stack."""
        samples, by_library, by_function = 0, Counter[str](), Counter[str]()
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not count.isdigit():
                continue
            leaf = stack.rsplit(";", 1)[-1]
            match = FRAME.match(leaf)
            # The root frame py-spy adds per process ("process 123:...") is a leaf only when
            # no Python frame was on the stack (native code holding the GIL).
            function, file = (match["function"], match["path"]) if match else (NATIVE, "")
            samples += int(count)
            by_library[library(file)] += int(count)
            by_function[f"{function} ({Path(file).name})" if file else NATIVE] += int(count)
        return cls(samples, by_library, by_function)

    def top(self, counter: Counter[str], n: int) -> str:
        return ", ".join(
            f"{name} {100 * count / self.samples:.0f}%" for name, count in counter.most_common(n)
        )


def summary(folder: Path, libraries: int = 6, functions: int = 4) -> str:
    """A markdown table: per process, its samples and where its self time went."""
    rows = []
    for path in sorted(folder.glob("*.txt")):
        profile = Profile.read(path)
        if profile.samples:
            rows.append(
                f"| {path.stem} | {profile.samples} | {profile.top(profile.by_library, libraries)}"
                f" | {profile.top(profile.by_function, functions)} |"
            )
    return (
        "| process | samples | self time by library | top functions |\n| --- | ---: | --- | --- |\n"
        + "\n".join(rows)
    )
