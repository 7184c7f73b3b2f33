"""Bounces and complaints (issue 19 item 3) on the fake unit of work: a 5xx at RCPT or DATA
marks the address `bounced`, a recorded complaint marks it `complained`; neither gets campaign
mail again, in later batches of the running campaign or in later campaigns; the campaign's
counts show them. A 4xx is retried as before and suppresses nobody."""

from __future__ import annotations

import pytest

from services.notifications import batches, campaigns, subscribers
from services.notifications.batches import CampaignSender
from services.notifications.mailer import MailDeliveryError
from services.notifications.ratelimit import Unlimited
from shared.messages.notifications import SendCampaignBatch
from tests.unit.fakes.notifications import FakeNotificationsWork, FakeSmtpServer


def sender(uow: FakeNotificationsWork, smtp: FakeSmtpServer) -> CampaignSender:
    return CampaignSender(uow, smtp, Unlimited(), chunk=2, lease_seconds=30, connections=2)


async def campaign(uow: FakeNotificationsWork) -> str:
    new = campaigns.NewCampaign("Black Friday", "50% off", 2)
    return (await campaigns.create_campaign(uow, new))["id"]


async def run(uow: FakeNotificationsWork, smtp: FakeSmtpServer, campaign_id: str) -> dict:
    for command in uow.sent_of(SendCampaignBatch):
        if command.campaign_id == campaign_id:
            await batches.send_campaign_batch(sender(uow, smtp), command)
    return uow.campaigns.rows[campaign_id]


def statuses(uow: FakeNotificationsWork) -> dict[str, str]:
    return {person["email"]: person["status"] for person in uow.people.values()}


async def test_a_refusal_at_rcpt_or_data_bounces_the_address_for_every_later_campaign():
    uow = FakeNotificationsWork()
    uow.subscribe("a@x.test", "b@x.test", "c@x.test", "d@x.test", "e@x.test")
    answers = {"b@x.test": "refused", "c@x.test": "rejected", "d@x.test": "sender"}
    smtp = FakeSmtpServer({**answers, "e@x.test": "blocked"})
    first = await run(uow, smtp, await campaign(uow))
    assert smtp.delivered == ["a@x.test"]
    assert (first["status"], first["sent"], first["failed"], first["bounced"]) == (
        "completed",
        1,
        4,
        2,
    )
    # a refused sender (5xx to MAIL) or a policy refusal (5.7.x) is the mail's failure only
    assert statuses(uow) == {
        "a@x.test": "subscribed",
        "b@x.test": "bounced",
        "c@x.test": "bounced",
        "d@x.test": "subscribed",
        "e@x.test": "subscribed",
    }
    assert uow.people[2]["suppression"].startswith("550 5.1.1")
    bounced_rows = [row for row in uow.deliveries.rows.values() if row["status"] == "bounced"]
    assert sorted(row["email"] for row in bounced_rows) == ["b@x.test", "c@x.test"]

    smtp.answers.clear()
    second_id = await campaign(uow)
    assert uow.campaigns.rows[second_id]["total"] == 3  # a, d and e
    await run(uow, smtp, second_id)
    assert sorted(smtp.delivered) == ["a@x.test", "a@x.test", "d@x.test", "e@x.test"]


async def test_a_bounce_in_one_batch_is_skipped_by_a_later_batch_of_another_running_campaign():
    uow = FakeNotificationsWork()
    uow.subscribe("a@x.test", "b@x.test")
    smtp = FakeSmtpServer({"b@x.test": "refused"})
    running, later = await campaign(uow), await campaign(uow)  # both snapshot b
    await run(uow, smtp, running)
    smtp.answers.clear()
    row = await run(uow, smtp, later)
    assert (row["sent"], row["failed"], row["skipped"], row["bounced"]) == (1, 0, 1, 0)
    assert smtp.delivered == ["a@x.test", "a@x.test"]


async def test_a_temporary_failure_is_retried_and_suppresses_nobody():
    uow = FakeNotificationsWork()
    uow.subscribe("a@x.test", "b@x.test")
    smtp = FakeSmtpServer({"b@x.test": "down"})
    campaign_id = await campaign(uow)
    with pytest.raises(MailDeliveryError):
        await run(uow, smtp, campaign_id)
    smtp.answers.clear()
    row = await run(uow, smtp, campaign_id)  # the task's retry
    assert (row["status"], row["sent"], row["failed"], row["bounced"]) == ("completed", 2, 0, 0)
    assert set(statuses(uow).values()) == {"subscribed"}


async def test_a_complaint_suppresses_the_address_and_counts_once_in_its_campaign():
    uow, smtp = FakeNotificationsWork(), FakeSmtpServer()
    uow.subscribe("a@x.test", "b@x.test", "c@x.test")
    campaign_id = await campaign(uow)
    await run(uow, smtp, campaign_id)
    row = await subscribers.record_complaint(uow, "b@x.test", campaign_id)
    assert (row["email"], row["status"]) == ("b@x.test", "complained")
    assert row["suppression"] == f"complaint about {campaign_id}"
    again = await subscribers.record_complaint(uow, "b@x.test", campaign_id)
    assert again["suppressed_at"] == row["suppressed_at"]  # the first complaint's time kept
    await subscribers.unsubscribe(uow, "c@x.test")
    await subscribers.record_complaint(uow, "c@x.test", None)  # overrides unsubscribed
    assert uow.campaigns.rows[campaign_id]["complained"] == 1
    assert statuses(uow) == {
        "a@x.test": "subscribed",
        "b@x.test": "complained",
        "c@x.test": "complained",
    }
    assert (await subscribers.unsubscribe(uow, "b@x.test"))["status"] == "complained"

    later = await campaign(uow)
    assert uow.campaigns.rows[later]["total"] == 1


async def test_a_complaint_during_a_campaign_skips_the_address_in_its_later_batches():
    uow, smtp = FakeNotificationsWork(), FakeSmtpServer()
    uow.subscribe("a@x.test", "b@x.test", "c@x.test")
    campaign_id = await campaign(uow)  # batches [a, b], [c]
    await subscribers.record_complaint(uow, "c@x.test", campaign_id)  # c not sent: not counted
    row = await run(uow, smtp, campaign_id)
    assert (row["sent"], row["skipped"], row["complained"]) == (2, 1, 0)
    assert "c@x.test" not in smtp.delivered


async def test_a_complaint_about_an_unknown_address_or_campaign_changes_nothing():
    uow = FakeNotificationsWork()
    uow.subscribe("a@x.test")
    with pytest.raises(subscribers.SubscriberNotFound):
        await subscribers.record_complaint(uow, "nobody@x.test", None)
    with pytest.raises(campaigns.CampaignNotFound):
        await subscribers.record_complaint(uow, "a@x.test", "cmp_missing")
    assert statuses(uow) == {"a@x.test": "subscribed"}
