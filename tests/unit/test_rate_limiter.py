"""The token bucket's arithmetic: however takers interleave, the mails they send in any window
of T seconds never exceed burst + rate * T, and nobody waits longer than the debt requires."""

from hypothesis import given
from hypothesis import strategies as st

from services.notifications.ratelimit import Bucket, take

RATE, BURST = 100.0, 50.0


def test_a_full_bucket_serves_its_burst_at_once_then_makes_takers_wait():
    bucket = Bucket(BURST, at=0.0)
    bucket, wait = take(bucket, 50, now=0.0, rate=RATE, burst=BURST)
    assert wait == 0.0
    bucket, wait = take(bucket, 50, now=0.0, rate=RATE, burst=BURST)
    assert wait == 0.5  # 50 tokens at 100/s
    bucket, wait = take(bucket, 50, now=0.0, rate=RATE, burst=BURST)
    assert wait == 1.0  # queued behind the previous taker's debt


def test_an_idle_bucket_refills_only_up_to_its_burst():
    bucket, _ = take(Bucket(0.0, at=0.0), 0, now=3600.0, rate=RATE, burst=BURST)
    assert bucket.tokens == BURST


def test_giving_back_cancels_a_debt():
    bucket, _ = take(Bucket(BURST, at=0.0), 80, now=0.0, rate=RATE, burst=BURST)
    bucket, wait = take(bucket, -30, now=0.0, rate=RATE, burst=BURST)
    assert (bucket.tokens, wait) == (0.0, 0.0)


def test_a_clock_going_backwards_refills_nothing():
    bucket, _ = take(Bucket(0.0, at=10.0), 0, now=9.0, rate=RATE, burst=BURST)
    assert bucket == Bucket(0.0, at=10.0)


takes = st.lists(
    # chunks no bigger than the burst, as the runtime configures them (burst = one chunk)
    st.tuples(st.floats(min_value=0, max_value=0.5), st.integers(min_value=1, max_value=50)),
    min_size=1,
    max_size=60,
)


@given(takes)
def test_no_window_ever_sends_more_than_burst_plus_rate_times_its_length(calls):
    """Takers arrive at increasing times (`gap` apart), each sends its `n` mails when its wait
    ends: the sends then fit the (burst, rate) envelope of a token bucket, for every window."""
    bucket, now, sends = Bucket(BURST, at=0.0), 0.0, []
    for gap, n in calls:
        now += gap
        bucket, wait = take(bucket, n, now=now, rate=RATE, burst=BURST)
        sends.append((now + wait, n))
    for start, _ in sends:
        for end, _ in sends:
            if end >= start:
                in_window = sum(n for at, n in sends if start <= at <= end)
                assert in_window <= BURST + RATE * (end - start) + 1e-6


@given(st.integers(min_value=1, max_value=50), st.integers(min_value=1, max_value=2000))
def test_many_takers_at_once_finish_exactly_when_the_rate_allows(chunk, total):
    bucket, last_wait, taken = Bucket(BURST, at=0.0), 0.0, 0
    while taken < total:
        n = min(chunk, total - taken)
        bucket, last_wait = take(bucket, n, now=0.0, rate=RATE, burst=BURST)
        taken += n
    assert abs(last_wait - max(0.0, (total - BURST) / RATE)) < 1e-9
