"""Percentiles of accept-to-paid latencies when some orders were never paid
(bench/isolation/cells.py)."""

import pytest

from bench.isolation.cells import percentile, ratio, shown


def test_nearest_rank_over_all_paid_orders():
    latencies = [float(n) for n in range(1, 101)]  # 1..100 s
    assert percentile(latencies, 100, 50) == 50.0
    assert percentile(latencies, 100, 99) == 99.0
    assert percentile(latencies, 100, 100) == 100.0
    assert percentile([3.0, 1.0, 2.0], 3, 50) == 2.0  # unsorted input


def test_a_percentile_among_unpaid_orders_is_unknown():
    paid = [0.5] * 97  # 3 of 100 orders still unpaid at the cap
    assert percentile(paid, 100, 97) == 0.5
    assert percentile(paid, 100, 98) is None
    assert percentile([], 10, 1) is None
    assert percentile([], 0, 99) is None


def test_bad_input_is_refused():
    with pytest.raises(ValueError):
        percentile([1.0], 1, 0)
    with pytest.raises(ValueError):
        percentile([1.0, 2.0], 1, 50)


def test_shown_and_ratio():
    assert shown(0.614, 30) == "0.61"
    assert shown(None, 30) == "> 30"
    assert ratio(1.2, 1.0, 30) == "1.20x"
    assert ratio(None, 0.5, 30) == "> 60x"
    assert ratio(None, None, 30) == "n/a"
