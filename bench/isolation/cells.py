"""What one condition of one deployment measured, and its percentiles (pure: no I/O).

An order not paid when the bench stopped waiting has a latency known only to exceed the cap
(the wait ends `cap` seconds after the last order was accepted, so every unpaid order has
waited at least that long). Interpolating percentiles (`statistics.quantiles`) cannot take
such a value, so the percentile is by nearest rank over all placed orders, the unpaid ones
ranked last: when the rank falls among them the answer is "more than the cap", never a made-up
number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from shared.infra.settings import Settings

OURS, SINGLE = "ours", "single-queue"
BULK_RATE: float = Settings.model_fields["bulk_mail_rate_per_second"].default


def percentile(paid: Sequence[float], placed: int, p: float) -> float | None:
    """Nearest-rank `p`-th percentile (0 < p <= 100) of `placed` orders of which `paid` hold
    the latencies of those paid in time; None when it falls among the unpaid ones."""
    if not 0 < p <= 100:
        raise ValueError(f"percentile {p} not in (0, 100]")
    if placed < len(paid):
        raise ValueError(f"{len(paid)} paid of only {placed} placed")
    if placed == 0:
        return None
    rank = max(1, math.ceil(p / 100 * placed))
    return sorted(paid)[rank - 1] if rank <= len(paid) else None


def shown(value: float | None, cap: float) -> str:
    """Seconds for a table: `0.62`, or `> 45` for a percentile beyond the cap."""
    return f"> {cap:.0f}" if value is None else f"{value:.2f}"


def ratio(loaded: float | None, quiet: float | None, cap: float) -> str:
    """`loaded / quiet` for a table: `1.08x`, `> 72x` when the loaded one is beyond the cap."""
    if quiet is None or quiet <= 0:
        return "n/a"
    if loaded is None:
        return f"> {cap / quiet:.0f}x"
    return f"{loaded / quiet:.2f}x"


@dataclass
class Cell:
    deployment: str
    backlog: bool
    placed: int = 0
    refused: int = 0
    latencies: list[float] = field(default_factory=list)
    depths: dict[str, list[int]] = field(default_factory=dict)
    mails_sent: int = 0
    seconds: float = 0.0  # measured, windows and their waits together
    cpu: dict[str, float] = field(default_factory=dict)  # process -> CPU seconds in the cell
    windows: list[float | None] = field(default_factory=list)  # each window's p99

    def add(self, ids: list[str], latencies: list[float], depths: dict[str, list[int]]) -> None:
        self.placed += len(ids)
        self.latencies += latencies
        for queue, samples in depths.items():
            self.depths.setdefault(queue, []).extend(samples)
        self.windows.append(percentile(latencies, len(ids), 99))

    def cpu_share(self) -> dict[str, float]:
        return {name: spent / self.seconds for name, spent in self.cpu.items()}

    def p(self, q: float) -> float | None:
        return percentile(self.latencies, self.placed, q)
