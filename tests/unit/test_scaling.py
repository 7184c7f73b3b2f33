"""The local scaling rule is KEDA's: the same threshold per worker from the capacity file, the
same clamp, scale-out at once and scale-in after the window."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ops.scaling import Capacity, decide, wanted_workers
from workers.pools import Pool

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
CAPACITY = yaml.safe_load((DEPLOY / "capacity.yaml").read_text())["pools"]


def scaled_object(pool: Pool) -> dict:
    docs = yaml.safe_load_all(
        (DEPLOY / "k8s" / "base" / "pools" / f"{pool.value}.yaml").read_text()
    )
    return next(doc for doc in docs if doc and doc["kind"] == "ScaledObject")


@pytest.mark.parametrize("pool", list(Pool), ids=str)
def test_the_threshold_per_worker_is_the_one_keda_uses(pool):
    row = CAPACITY[pool.value]
    capacity = Capacity(row["concurrency"], row["service_time_s"], row["target_wait_s"])
    [trigger] = scaled_object(pool)["spec"]["triggers"]
    assert capacity.per_worker == int(trigger["metadata"]["value"])


def test_wanted_workers_is_the_ceiling_of_messages_per_worker_within_min_and_max():
    assert wanted_workers(0, 29, 2, 8) == 2
    assert wanted_workers(29, 29, 1, 8) == 1
    assert wanted_workers(30, 29, 1, 8) == 2
    assert wanted_workers(300, 29, 2, 8) == 8  # 11 wanted, capped


def test_scale_out_is_immediate_and_scale_in_waits_for_the_window():
    out = decide(current=2, messages=300, per_worker=29, minimum=2, maximum=8, recent_wants=[2])
    assert (out.wanted, out.workers) == (8, 8)
    assert "300 messages / 29 per worker -> want 8" in out.reason
    held = decide(current=8, messages=0, per_worker=29, minimum=2, maximum=8, recent_wants=[8, 5])
    assert (held.wanted, held.workers) == (2, 8)
    after = decide(current=8, messages=0, per_worker=29, minimum=2, maximum=8, recent_wants=[3])
    assert after.workers == 3
    done = decide(current=3, messages=0, per_worker=29, minimum=2, maximum=8, recent_wants=[])
    assert done.workers == 2


def test_a_scale_out_window_scales_out_to_the_lowest_want_seen_in_it():
    # notifications: 30 s up window. A spike seen once does not start workers.
    spike = decide(
        current=1,
        messages=900,
        per_worker=229,
        minimum=1,
        maximum=6,
        recent_wants=[],
        recent_up_wants=[1, 1],
    )
    assert (spike.wanted, spike.workers) == (4, 1)
    held = decide(
        current=1,
        messages=900,
        per_worker=229,
        minimum=1,
        maximum=6,
        recent_wants=[],
        recent_up_wants=[3, 4],
    )
    assert held.workers == 3
