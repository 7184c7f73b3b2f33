"""Campaign rules: status moves, batching and chunking arithmetic, address normalisation."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.notifications.domain import (
    CampaignFinished,
    CampaignStatus,
    InvalidEmail,
    batch_count,
    cancelled,
    chunk_size,
    chunks,
    normalise_email,
    paused,
    resumed,
)

S = CampaignStatus


@pytest.mark.parametrize("current", [S.QUEUED, S.SENDING, S.PAUSED])
def test_anything_unfinished_can_be_paused_and_cancelled(current):
    assert paused(current) is S.PAUSED
    assert cancelled(current) is S.CANCELLED


def test_finished_campaigns_refuse_to_move():
    for move in (paused, cancelled):
        with pytest.raises(CampaignFinished):
            move(S.COMPLETED)
    with pytest.raises(CampaignFinished):
        paused(S.CANCELLED)
    assert cancelled(S.CANCELLED) is S.CANCELLED  # cancelling twice is harmless
    for status in (S.COMPLETED, S.CANCELLED):
        with pytest.raises(CampaignFinished):
            resumed(status, started=True, done=False)


def test_resume_returns_to_where_the_campaign_was():
    assert resumed(S.PAUSED, started=False, done=False) is S.QUEUED
    assert resumed(S.PAUSED, started=True, done=False) is S.SENDING
    assert resumed(S.PAUSED, started=True, done=True) is S.COMPLETED  # finished while paused
    assert resumed(S.SENDING, started=True, done=False) is S.SENDING


@pytest.mark.parametrize(
    ("total", "size", "expected"), [(0, 500, 0), (1, 500, 1), (500, 500, 1), (501, 500, 2)]
)
def test_batch_count(total, size, expected):
    assert batch_count(total, size) == expected


@given(st.integers(min_value=0, max_value=5000), st.integers(min_value=1, max_value=600))
def test_chunks_cover_every_position_once_in_order(size, chunk):
    spans = chunks(size, chunk)
    positions = [p for first, last in spans for p in range(first, last + 1)]
    assert positions == list(range(1, size + 1))
    assert all(last - first + 1 <= chunk for first, last in spans)


@pytest.mark.parametrize(
    ("rate", "expected"), [(0, 50), (10_000, 50), (500, 50), (200, 20), (14, 1), (0.5, 1)]
)
def test_a_chunk_is_about_a_tenth_of_a_second_of_the_rate(rate, expected):
    assert chunk_size(rate, chunk_max=50) == expected


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("Ann@Example.COM", "ann@example.com"),
        ("  bob@example.com", None),
        ("cy@bücher.de", "cy@xn--bcher-kva.de"),
    ],
)
def test_addresses_are_normalised(raw, stored):
    if stored is None:
        with pytest.raises(InvalidEmail):
            normalise_email(raw)
    else:
        assert normalise_email(raw) == stored


@pytest.mark.parametrize("raw", ["", "nobody", "a@b", "ünïcode@example.com", "a\r\nb@example.com"])
def test_invalid_addresses_are_refused(raw):
    with pytest.raises(InvalidEmail):
        normalise_email(raw)
