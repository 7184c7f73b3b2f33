"""`make audit` reads the local SMTP sink only after the records it compares it with.

A sender writes `sent` only once the sink has the mail, so records first, then the sink, cannot
race: a campaign or an order mail still being sent is never reported as lost. The database is
faked here (what is tested is the order of the reads); the checks' SQL runs in the e2e tests.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime

import pytest

from ops import audit
from shared.infra.settings import Settings


class Timeline:
    """A campaign still sending while the audit reads: right after the audit's first read, the
    mail to b@ lands in the sink and then its row says `sent`. Whatever read comes first, a
    sink read before the rows would miss a mail the rows then call sent."""

    def __init__(self) -> None:
        self.reads: list[str] = []
        self.landed = False

    def _read(self, what: str) -> None:
        self.reads.append(what)
        if len(self.reads) == 1:
            self.landed = True

    async def fetch(self, _: Settings, service: str, query: str, *args: object) -> list[dict]:
        self._read(service)
        if "FROM campaigns" in query:
            campaign = {"id": "cmp_1", "status": "sending", "total": 2}
            return [campaign | {"sent": 1 + self.landed, "failed": 0, "skipped": 0}]
        if "FROM campaign_deliveries" in query:
            second = "sent" if self.landed else "sending"
            return [
                {"email": "a@x.test", "status": "sent"},
                {"email": "b@x.test", "status": second},
            ]
        if "FROM orders" in query:
            return [{"id": "ord_1"}]
        if "FROM notifications" in query:
            return [{"order_id": "ord_1", "n": 1}]
        raise AssertionError(query)

    def sink(self) -> Counter[str]:
        landed = self.landed
        self._read("sink")
        mails = Counter({"cmp_1:a@x.test": 1, "ord_1:order_confirmation": 1})
        if landed:
            mails["cmp_1:b@x.test"] = 1
        return mails


@pytest.fixture
def timeline(monkeypatch: pytest.MonkeyPatch) -> Timeline:
    timeline = Timeline()
    monkeypatch.setattr(audit, "_fetch", timeline.fetch)
    return timeline


def test_a_campaign_still_sending_is_not_lost_mail(timeline: Timeline):
    since: datetime | None = None
    verdict = asyncio.run(audit.campaign_mail_once(Settings(), since, timeline.sink))
    assert verdict.ok, verdict.violations
    assert timeline.reads[-1] == "sink" and timeline.reads.count("sink") == 1
    assert verdict.checked == 2 and verdict.notes["sink checked"] is True


def test_order_confirmations_are_compared_with_the_sink_read_after_them(timeline: Timeline):
    verdict = asyncio.run(audit.confirmations_once(Settings(), None, timeline.sink))
    assert verdict.ok, verdict.violations
    assert timeline.reads == ["orders", "notifications", "sink"]


def test_a_mail_recorded_sent_but_missing_from_the_sink_is_still_a_violation(timeline: Timeline):
    def empty_sink() -> Counter[str]:
        return Counter()

    verdict = asyncio.run(audit.campaign_mail_once(Settings(), None, empty_sink))
    assert verdict.violations == ["cmp_1: a mail recorded sent is not in the sink"] * 2


def test_the_sink_read_before_the_records_would_report_the_mail_in_flight(timeline: Timeline):
    """What the audit did before: the same moment, the sink read first."""
    read_first = timeline.sink()
    verdict = asyncio.run(audit.campaign_mail_once(Settings(), None, lambda: read_first))
    assert verdict.violations == ["cmp_1: a mail recorded sent is not in the sink"]
