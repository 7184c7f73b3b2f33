"""The scaling rule KEDA applies to a pool (deploy/k8s/base/pools/*.yaml), as a pure function,
so the local autoscaler (`doorbuster autoscale`, ops/autoscale.py) and its tests apply the same one.

KEDA's rabbitmq scaler in `QueueLength` mode asks the HPA for `ceil(messages / value)`
replicas, `messages` being ready + unacked, clamped to the ScaledObject's min and max; the
HPA then scales in only after its stabilization window. `value` follows from the measured
service time in deploy/capacity.yaml: `ceil(c x (1 + W / S))` (deploy/README.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
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
    recent_wants: Sequence[int],
    recent_up_wants: Sequence[int] = (),
) -> Decision:
    """The HPA's stabilization: scale in only to the highest want seen in the scale-in window
    (`recent_wants`, this want excluded); scale out to the lowest want seen in the scale-out
    window (`recent_up_wants`; empty, at once, for a window of 0 s like payments' and orders')."""
    wanted = wanted_workers(messages, per_worker, minimum, maximum)
    up = min([wanted, *recent_up_wants])
    down = max([wanted, *recent_wants])
    if up > current:
        workers = up
    elif down < current:
        workers = down
    else:
        workers = current
    return Decision(current, wanted, workers, messages, per_worker)
