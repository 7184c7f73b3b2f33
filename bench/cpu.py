"""Where the machine's CPU went during a benchmark window, per component (psutil).

On a 2-core machine everything (APIs, pools, PostgreSQL, RabbitMQ, the SMTP sink, the load
generator) shares the same cores, so "CPU milliseconds per unit of work, by component" is the
profile that bounds a throughput: `cores * 1000 / total ms per unit` is the ceiling no
configuration can pass. Components are the stack's own processes (by name) plus the servers the
stack shares with the machine (all `postgres` and RabbitMQ `beam.smp` processes), and this
process as the load generator.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import psutil

SERVERS = {"postgres": "postgresql", "beam.smp": "rabbitmq"}


class _Times(Protocol):  # psutil's pcputimes
    user: float
    system: float


def _seconds(times: _Times | None) -> float:
    """User + system CPU of one process (its own threads; children are processes of their own)."""
    return times.user + times.system if times is not None else 0.0


def _tree(root: int) -> dict[int, float]:
    """CPU seconds so far of a process and all its descendants, per pid."""
    try:
        top = psutil.Process(root)
        members = [top, *top.children(recursive=True)]
    except psutil.Error:
        return {root: 0.0}
    seconds = {}
    for member in members:
        try:
            seconds[member.pid] = _seconds(member.cpu_times())
        except psutil.Error:  # exited while we walked the tree
            continue
    return seconds


Snapshot = dict[str, dict[int, float]]  # component -> pid -> CPU seconds so far


def snapshot(processes: Mapping[str, int]) -> Snapshot:
    """CPU seconds so far of each process of each named process tree, of the shared servers
    and of this process, per pid: a process that exits between two snapshots then drops out of
    the difference instead of taking its whole past with it (a PostgreSQL backend that closes
    mid-window would otherwise cancel out everything the others did)."""
    seconds: Snapshot = {name: _tree(root) for name, root in processes.items()}
    for process in psutil.process_iter(["name", "cpu_times"]):
        if component := SERVERS.get(process.info["name"] or ""):
            seconds.setdefault(component, {})[process.pid] = _seconds(process.info["cpu_times"])
    seconds["load generator"] = {os.getpid(): _seconds(psutil.Process().cpu_times())}
    return seconds


@dataclass
class Usage:
    """CPU used between two snapshots, per component."""

    seconds: dict[str, float]
    wall: float

    @classmethod
    def between(cls, before: Snapshot, after: Snapshot, wall: float) -> Usage:
        """What each component used between two snapshots, over the processes alive at the
        second (those that started in between count from zero)."""
        return cls(
            {
                component: sum(
                    max(cpu - before.get(component, {}).get(pid, 0.0), 0.0)
                    for pid, cpu in pids.items()
                )
                for component, pids in after.items()
            },
            wall,
        )

    @property
    def busy_cores(self) -> float:
        return sum(self.seconds.values()) / self.wall if self.wall else 0.0

    def per_unit_ms(self, units: int) -> dict[str, float]:
        return {k: 1000 * v / units for k, v in self.seconds.items()} if units else {}

    def ceiling(self, units: int, cores: int | None = None) -> float:
        """Units per second the machine could do if every core did only this work."""
        total_ms = sum(self.per_unit_ms(units).values())
        return (cores or os.cpu_count() or 1) * 1000 / total_ms if total_ms else float("inf")

    def table(self, units: int, unit: str) -> str:
        per_unit = self.per_unit_ms(units)
        rows = "\n".join(
            f"| {name} | {self.seconds[name] / self.wall:.2f} | {per_unit[name]:.1f} |"
            for name in sorted(per_unit, key=per_unit.get, reverse=True)
        )
        return (
            f"| component | cores busy | CPU ms per {unit} |\n| --- | ---: | ---: |\n{rows}\n"
            f"| **all** | **{self.busy_cores:.2f}** | **{sum(per_unit.values()):.1f}** |"
        )
