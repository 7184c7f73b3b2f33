"""`make surge` says, before the load, when old data will slow it (bench/surge/old_data.py)."""

from __future__ import annotations

from bench.surge.old_data import BACKLOG_LIMIT, OldData, warnings


def test_an_audience_far_above_what_the_run_imports_is_a_warning_with_its_cost():
    [line] = warnings(OldData(other_subscribers=89_852, queued=0), 2000, 200.0)
    assert line.startswith("warning: the run's campaign will go to 91,852 subscribed addresses")
    assert "89,852 of them left by earlier runs" in line
    assert "about 459 s of sending at 200 mails/s, not 10 s" in line
    assert "`make reset`" in line


def test_a_backlog_in_the_queues_is_a_warning():
    [line] = warnings(OldData(other_subscribers=0, queued=BACKLOG_LIMIT + 1), 2000, 200.0)
    assert "1,001 messages already wait" in line and "`make reset`" in line


def test_a_fresh_or_nearly_fresh_stack_is_no_warning():
    assert warnings(OldData(other_subscribers=0, queued=0), 2000, 200.0) == []
    # Up to as many others as the run imports (the README's two addresses, a few tests).
    assert warnings(OldData(other_subscribers=2000, queued=BACKLOG_LIMIT), 2000, 200.0) == []
    assert warnings(OldData(other_subscribers=None, queued=None), 2000, 200.0) == []


def test_an_unthrottled_campaign_names_no_duration():
    [line] = warnings(OldData(other_subscribers=10_000, queued=0), 2000, 0.0)
    assert "mails/s" not in line and "12,000 subscribed addresses" in line
