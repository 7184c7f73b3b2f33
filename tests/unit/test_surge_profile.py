"""The surge's step profile: baseline, a 10x surge within 10 seconds, hold, fall back."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.surge import profile


def test_default_step_profile_is_baseline_surge_hold_fall_back():
    plan = profile.parse("step", peak=100, duration=100)

    assert [(s.label, s.until, s.users) for s in plan.stages] == [
        ("baseline", 30.0, 10),
        ("surge + hold", 75.0, 100),
        ("fall back", 100.0, 10),
    ]
    assert plan.stages[1].spawn_rate == 9.0  # 90 more users within 10 s
    assert (plan.duration, plan.peak_users) == (100.0, 100)
    assert plan.surge_starts_at == 30.0
    assert plan.midpoint == 50.0


@pytest.mark.parametrize(
    ("elapsed", "users"), [(0, 10), (29.9, 10), (30, 100), (74.9, 100), (75, 10), (99.9, 10)]
)
def test_the_stage_at_a_moment(elapsed, users):
    stage = profile.parse("step", peak=100, duration=100).at(elapsed)

    assert stage is not None and stage.users == users


def test_the_run_ends_after_its_duration():
    assert profile.parse("step", peak=100, duration=100).at(100.0) is None


@given(peak=st.integers(1, 50_000), duration=st.floats(10, 3600))
def test_the_surge_reaches_the_peak_within_ten_seconds(peak, duration):
    plan = profile.step(peak, duration)
    baseline, surge = plan.stages[0], plan.stages[1]

    assert baseline.users == max(1, round(peak / 10))
    assert (surge.users - baseline.users) / surge.spawn_rate <= profile.SURGE_SECONDS
    assert surge.spawn_rate >= 1


def test_a_given_spawn_rate_is_used_as_is():
    plan = profile.parse("step", peak=100, duration=100, spawn_rate=3)

    assert {stage.spawn_rate for stage in plan.stages} == {3.0}


def test_flat_profile_holds_the_peak():
    plan = profile.parse("flat", peak=40, duration=60)

    assert [(s.until, s.users) for s in plan.stages] == [(60.0, 40)]
    assert plan.surge_starts_at == 0.0


def test_explicit_stages_add_up():
    plan = profile.parse("30s:10, 45s:200,15:10", peak=1, duration=1)

    assert [(s.until, s.users) for s in plan.stages] == [(30.0, 10), (75.0, 200), (90.0, 10)]
    assert plan.stages[1].spawn_rate == 19.0  # 190 more users within 10 s
    assert plan.surge_starts_at == 30.0
    assert plan.duration == 90.0


@pytest.mark.parametrize("spec", ["30s", "30s:0", "0s:10", "abc", "30s:10,", "10m:5"])
def test_bad_explicit_stages_are_refused(spec):
    with pytest.raises(ValueError, match="bad stage"):
        profile.parse(spec, peak=10, duration=10)


@pytest.mark.parametrize(("peak", "duration", "rate"), [(0, 10, None), (10, 0, None), (10, 10, 0)])
def test_nonsense_sizes_are_refused(peak, duration, rate):
    with pytest.raises(ValueError):
        profile.parse("step", peak=peak, duration=duration, spawn_rate=rate)
