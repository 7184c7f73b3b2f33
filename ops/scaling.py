"""The scaling rule KEDA applies to a pool (deploy/k8s/base/pools/*.yaml), as a pure function,
so the local autoscaler (to come: `doorbuster autoscale`) and its tests apply the same one.

KEDA's rabbitmq scaler in `QueueLength` mode asks the HPA for `ceil(messages / value)`
replicas, `messages` being ready + unacked, clamped to the ScaledObject's min and max; the
HPA then scales in only after its stabilization window. `value` follows from the measured
service time in deploy/capacity.yaml: `ceil(c x (1 + W / S))` (deploy/README.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Capacity:
    """One pool's row of deploy/capacity.yaml."""

    concurrency: int
    service_time_s: float
    target_wait_s: float

    @property
    def per_worker(self) -> int:
        """The backlog one worker should carry: its `c` unacked plus `mu x W` ready."""
        return math.ceil(self.concurrency * (1 + self.target_wait_s / self.service_time_s))


@dataclass(frozen=True)
class Decision:
    current: int
    wanted: int  # what the rule asks for, before the scale-in window
    workers: int  # what to run now
    messages: int
    per_worker: int

    @property
    def reason(self) -> str:
        return (
            f"{self.messages} messages / {self.per_worker} per worker -> want {self.wanted}, "
            f"running {self.current}, now {self.workers}"
        )


def wanted_workers(messages: int, per_worker: int, minimum: int, maximum: int) -> int:
    """KEDA's QueueLength target: ceil(messages / value), within [minimum, maximum]."""
    return max(minimum, min(maximum, math.ceil(messages / per_worker)))


def decide(
    current: int,
    messages: int,
    per_worker: int,
    minimum: int,
    maximum: int,
    recent_wants: list[int],
) -> Decision:
    """Scale out at once; scale in only to the highest want seen in the stabilization window
    (`recent_wants`, oldest first, this want excluded), as the HPA does."""
    wanted = wanted_workers(messages, per_worker, minimum, maximum)
    workers = wanted if wanted >= current else min(current, max([wanted, *recent_wants]))
    return Decision(current, wanted, workers, messages, per_worker)
