"""Campaign rules: statuses and their moves, how an audience is cut into batches and chunks,
and how addresses are normalised. Pure: no FastAPI, SQLAlchemy or Celery here."""

from __future__ import annotations

import uuid
from enum import StrEnum

from email_validator import EmailNotValidError, validate_email


class CampaignStatus(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    PAUSED = "paused"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


ACTIVE = frozenset({CampaignStatus.QUEUED, CampaignStatus.SENDING})
FINAL = frozenset({CampaignStatus.COMPLETED, CampaignStatus.CANCELLED})


class SubscriberStatus(StrEnum):
    """Only `subscribed` gets campaign mail; the other three are suppressed for good (an import
    never resubscribes). A status leaves `subscribed` once, except that a complaint, the
    strongest signal a mailbox provider sends, replaces `unsubscribed` or `bounced` too."""

    SUBSCRIBED = "subscribed"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"


class CampaignFinished(Exception):
    """The campaign is completed or cancelled: it can no longer be paused, resumed or cancelled."""


def new_campaign_id() -> str:
    return f"cmp_{uuid.uuid4().hex}"


def paused(current: CampaignStatus) -> CampaignStatus:
    """Pause a queued or sending campaign; pausing a paused one changes nothing."""
    if current in FINAL:
        raise CampaignFinished(current)
    return CampaignStatus.PAUSED


def cancelled(current: CampaignStatus) -> CampaignStatus:
    """Cancel anything not completed; cancelling twice changes nothing."""
    if current is CampaignStatus.COMPLETED:
        raise CampaignFinished(current)
    return CampaignStatus.CANCELLED


def resumed(current: CampaignStatus, started: bool, done: bool) -> CampaignStatus:
    """A paused campaign goes back to where it was; if its last chunk finished while it was
    paused, it completes now. Resuming an active campaign changes nothing."""
    if current in FINAL:
        raise CampaignFinished(current)
    if current in ACTIVE:
        return current
    if done:
        return CampaignStatus.COMPLETED
    return CampaignStatus.SENDING if started else CampaignStatus.QUEUED


def batch_count(total: int, batch_size: int) -> int:
    """How many batch tasks an audience of `total` needs (the last one may be short)."""
    return -(-total // batch_size)


def chunk_size(rate_per_second: float, chunk_max: int, window_seconds: float = 0.1) -> int:
    """Addresses claimed and sent between two status checks and token takes.

    About `window_seconds` of the pool's rate, so a low rate sends smoothly (a provider
    limiting to 14/s sees ~1 mail every 70 ms, not bursts of 50) and a pause lands within a
    chunk; capped by `chunk_max` so each check costs little at high rates. Rate 0 = no limit.
    """
    if rate_per_second <= 0:
        return chunk_max
    return max(1, min(chunk_max, int(rate_per_second * window_seconds)))


def chunks(size: int, chunk: int) -> list[tuple[int, int]]:
    """1-based inclusive positions `(first, last)` covering `1..size` in steps of `chunk`
    (PostgreSQL array slices are 1-based and inclusive)."""
    return [(first, min(first + chunk - 1, size)) for first in range(1, size + 1, chunk)]


class InvalidEmail(ValueError):
    pass


def normalise_email(raw: str) -> str:
    """The one form an address is stored, compared and mailed in.

    Syntax checked (no DNS lookup), internationalised domains turned into their ASCII form and
    the whole address lowercased: RFC 5321 lets a local part be case-sensitive, but no mailbox
    provider treats it so, and `Ann@x.com` and `ann@x.com` must not get a campaign twice.
    Non-ASCII local parts need SMTPUTF8 end to end and are refused.
    """
    try:
        checked = validate_email(raw, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise InvalidEmail(str(exc)) from exc
    return (checked.ascii_email or checked.normalized).lower()
