"""The load profile as plain arithmetic: a list of stages, and the stage a moment falls in.

Locust's `LoadTestShape` (bench/surge/shape.py) only asks "how many users, at what spawn rate,
now?"; the answer lives here, free of Locust and gevent, so the unit tests can check it and the
orchestrator can plan around it (when the flash sale opens, when the campaign goes out).

Profiles:
- `step` (default): a baseline of peak/10 users for the first 30% of the run, a surge to the
  peak within `surge_seconds` (10 s), held until 75%, then back to the baseline until the end.
- `flat`: the peak from start to end (for comparisons without the surge).
- explicit stages, `"30s:10,50s:100,40s:10"`: each `<seconds>s:<users>` in order.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

BASELINE_SHARE = 0.30
FALL_BACK_AT = 0.75
SURGE_FACTOR = 10
SURGE_SECONDS = 10.0
_STAGE = re.compile(r"^\s*(\d+(?:\.\d+)?)s?\s*:\s*(\d+)\s*$")


@dataclass(frozen=True)
class Stage:
    label: str
    until: float  # seconds since the start at which this stage ends
    users: int
    spawn_rate: float


@dataclass(frozen=True)
class Profile:
    name: str
    stages: tuple[Stage, ...]

    @property
    def duration(self) -> float:
        return self.stages[-1].until

    @property
    def peak_users(self) -> int:
        return max(stage.users for stage in self.stages)

    @property
    def surge_starts_at(self) -> float:
        """When the first stage that raises the user count begins (0 if none does)."""
        for before, stage in zip(self.stages, self.stages[1:], strict=False):
            if stage.users > before.users:
                return before.until
        return 0.0

    @property
    def midpoint(self) -> float:
        return self.duration / 2

    def at(self, elapsed: float) -> Stage | None:
        """The stage running `elapsed` seconds after the start; None once the run is over."""
        for stage in self.stages:
            if elapsed < stage.until:
                return stage
        return None


def surge_spawn_rate(to: int, since: int, surge_seconds: float = SURGE_SECONDS) -> float:
    """The spawn rate that moves `since` users to `to` users within `surge_seconds`."""
    return float(max(1, math.ceil(abs(to - since) / surge_seconds)))


def baseline_of(peak: int, factor: int = SURGE_FACTOR) -> int:
    return max(1, round(peak / factor))


def step(peak: int, duration: float, spawn_rate: float | None = None) -> Profile:
    baseline = baseline_of(peak)
    rate = spawn_rate or surge_spawn_rate(peak, baseline)
    stages = (
        Stage("baseline", round(duration * BASELINE_SHARE, 1), baseline, rate),
        Stage("surge + hold", round(duration * FALL_BACK_AT, 1), peak, rate),
        Stage("fall back", float(duration), baseline, rate),
    )
    return Profile("step", stages)


def flat(peak: int, duration: float, spawn_rate: float | None = None) -> Profile:
    rate = spawn_rate or surge_spawn_rate(peak, 0)
    return Profile("flat", (Stage("flat", float(duration), peak, rate),))


def explicit(spec: str, spawn_rate: float | None = None) -> Profile:
    """`"30s:10,50s:100,40s:10"`: stage lengths in seconds with their user counts."""
    stages: list[Stage] = []
    until, previous_users = 0.0, 0
    for index, part in enumerate(spec.split(",")):
        match = _STAGE.match(part)
        if not match:
            raise ValueError(f"bad stage {part!r}: expected <seconds>s:<users>, e.g. 30s:10")
        seconds, users = float(match[1]), int(match[2])
        if seconds <= 0 or users < 1:
            raise ValueError(f"bad stage {part!r}: seconds > 0 and users >= 1")
        until += seconds
        rate = spawn_rate or surge_spawn_rate(users, previous_users)
        stages.append(Stage(f"stage {index + 1}", until, users, rate))
        previous_users = users
    return Profile("explicit", tuple(stages))


def parse(spec: str, peak: int, duration: float, spawn_rate: float | None = None) -> Profile:
    """A profile from its command-line spelling; `peak` and `duration` size `step` and `flat`."""
    if peak < 1 or duration <= 0:
        raise ValueError("users must be >= 1 and duration > 0")
    if spawn_rate is not None and spawn_rate <= 0:
        raise ValueError("spawn rate must be > 0")
    if spec == "step":
        return step(peak, duration, spawn_rate)
    if spec == "flat":
        return flat(peak, duration, spawn_rate)
    return explicit(spec, spawn_rate)
