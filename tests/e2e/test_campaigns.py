"""Subscribers and campaigns against the real stack and SMTP sink."""

from __future__ import annotations

import pytest

from tests.support.campaigns import Campaigns, addresses, campaign_mail, empty_audience
from tests.support.stack import Stack


@pytest.fixture
async def audience() -> None:
    await empty_audience()


async def test_a_small_campaign_reaches_each_address_once(
    stack: Stack, campaigns: Campaigns, audience: None
):
    people = addresses("small", 1200)
    assert await campaigns.import_subscribers(people) == {"created": 1200, "existing": 0}
    accepted = await campaigns.create()
    assert accepted["status"] == "queued" and accepted["total"] == 1200
    done = await campaigns.wait_status(accepted["id"], {"completed"})
    assert (done["sent"], done["failed"], done["skipped"]) == (1200, 0, 0)
    mail = campaign_mail(stack.maildir, accepted["id"])
    assert len(mail) == 1200 and set(mail.values()) == {1}
