"""Open-loop windows at a fixed rate, and the ladder of rising rates with a long hold."""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass

from bench.cpu import Usage, snapshot
from bench.e2e.arms import STAND_INS, Arm
from bench.openloop import at_rate
from devtools.harness.shop import FINAL, unique_sku

GRACE = 30.0
# 5 s let a 30-second window pass while a backlog grew (p50 2 s at 25/s on 2026-11-25), and
# the five-minute hold at that rate then failed.
SUSTAINED_P95_S = 1.0


@dataclass
class Window:
    rate: float
    seconds: float
    placed: int
    paid: int
    paid_per_second: float
    p50_s: float
    p95_s: float
    cpu: Usage | None = None

    @property
    def sustained(self) -> bool:
        return self.paid == self.placed and self.p95_s < SUSTAINED_P95_S

    def system_ms(self) -> float:
        """CPU ms per paid order of the system: every process but the stand-ins."""
        if not (self.cpu and self.paid):
            return float("nan")
        per_order = self.cpu.per_unit_ms(self.paid)
        return sum(ms for name, ms in per_order.items() if name not in STAND_INS)

    def stand_in_ms(self) -> dict[str, float]:
        per_order = self.cpu.per_unit_ms(self.paid) if self.cpu and self.paid else {}
        return {name: per_order.get(name, 0.0) for name in STAND_INS}


async def window(arm: Arm, sku: str, rate: float, seconds: float) -> Window:
    accepted: dict[str, float] = {}

    async def place() -> None:
        if order_id := await arm.place(sku):
            accepted[order_id] = time.monotonic()

    cpu_before = snapshot(arm.pids())
    started = time.monotonic()
    await at_rate(rate, seconds, place)
    deadline, final = time.monotonic() + GRACE, {}
    while time.monotonic() < deadline:
        rows = await arm.order_times(list(accepted))
        final = {row["id"]: row for row in rows if row["status"] in FINAL}
        if len(final) == len(accepted):
            break
        await asyncio.sleep(1)
    paid = [row for row in final.values() if row["status"] == "paid"]
    cpu = Usage.between(cpu_before, snapshot(arm.pids()), time.monotonic() - started)
    delays = sorted((row["updated_at"] - row["created_at"]).total_seconds() for row in paid)
    span = (
        (max(r["updated_at"] for r in paid) - min(r["created_at"] for r in paid)).total_seconds()
        if paid
        else seconds
    )
    return Window(
        rate,
        seconds,
        placed=len(accepted),
        paid=len(paid),
        paid_per_second=len(paid) / max(span, seconds),
        p50_s=statistics.median(delays) if delays else float("nan"),
        p95_s=delays[int(len(delays) * 0.95) - 1] if delays else float("nan"),
        cpu=cpu,
    )


@dataclass
class Ladder:
    arm: str
    windows: list[Window]
    held: Window | None

    @property
    def best(self) -> float:
        return max((w.paid_per_second for w in self.all if w.sustained), default=0.0)

    @property
    def all(self) -> list[Window]:
        return self.windows + ([self.held] if self.held else [])

    @property
    def held_rate(self) -> float:
        return self.held.rate if self.held and self.held.sustained else 0.0

    @property
    def profiled(self) -> Window | None:
        """The window whose CPU speaks for the arm: the hold, else the last sustained one."""
        if self.held:
            return self.held
        return next((w for w in reversed(self.windows) if w.sustained), None)


async def ladder(arm: Arm, rates: list[float], seconds: float, hold: float) -> Ladder:
    """Rates rise until one is not sustained; then the highest sustained one is held for
    `hold` seconds (a hold that fails steps down one rung and holds once more)."""
    sku = unique_sku("E2E")
    await arm.put_product(sku, stock=10_000_000, price=2500)
    # Warm up (connections, prepared statements, the emulator): not part of any window.
    await window(arm, sku, rate=10, seconds=2)
    results: list[Window] = []
    for rate in rates:
        result = await window(arm, sku, rate, seconds)
        results.append(result)
        print(f"{arm.name}: {rate:6.0f}/s offered: {result}", flush=True)
        if not result.sustained:
            break
    sustained = sorted((w.rate for w in results if w.sustained), reverse=True)
    held = None
    for rate in sustained[:2] if hold else []:
        if held is not None:
            results.append(held)  # the failed hold stays in the table
        held = await window(arm, sku, rate, hold)
        print(f"{arm.name}: held {held.rate:.0f}/s for {hold:.0f} s: {held}", flush=True)
        if held.sustained:
            break
    return Ladder(arm.name, results, held)
