"""The benchmark CPU accounting: per-unit cost and the ceiling it implies."""

import os

from bench.cpu import Usage, snapshot


def test_usage_per_unit_and_ceiling():
    usage = Usage.between(
        {"orders-api": {10: 1.0}, "postgresql": {20: 2.0, 21: 50.0}},
        # backend 21 exited (its past must not cancel the others'), backend 22 is new
        {"orders-api": {10: 3.0}, "postgresql": {20: 3.0, 22: 1.0}, "payments-pool": {30: 1.0}},
        wall=10.0,
    )
    assert usage.seconds == {"orders-api": 2.0, "postgresql": 2.0, "payments-pool": 1.0}
    assert usage.busy_cores == 0.5
    assert usage.per_unit_ms(100) == {"orders-api": 20.0, "postgresql": 20.0, "payments-pool": 10.0}
    # 50 ms of CPU per unit on 2 cores: 40 units/s at most.
    assert usage.ceiling(100, cores=2) == 40.0
    assert usage.table(100, "order").splitlines()[2].startswith("| orders-api | 0.20 | 20.0 |")


def test_snapshot_counts_this_process_and_a_named_tree():
    sum(range(2_000_000))  # some CPU of our own
    seconds = snapshot({"me": os.getpid()})
    assert seconds["me"][os.getpid()] > 0 and seconds["load generator"][os.getpid()] > 0
