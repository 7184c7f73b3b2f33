"""The notifications service's use cases on a fake unit of work and a fake SMTP server: the
order mail (at most once per order and kind) and the campaign batch (each address once)."""

from __future__ import annotations

import pytest

from services.notifications import batches, campaigns, handlers, subscribers
from services.notifications.batches import CampaignSender
from services.notifications.domain import CampaignFinished
from services.notifications.mailer import MailDeliveryError
from services.notifications.ratelimit import Unlimited
from services.notifications.unsubscribe import UnsubscribeLinks
from shared.messages.notifications import SendCampaignBatch
from shared.messages.orders import SendOrderMail
from tests.unit.fakes.notifications import FakeNotificationsWork, FakeSmtpServer

MAIL = SendOrderMail(order_id="ord_1", kind="order_confirmation", to="ann@example.com", total=500)


def mail_row(uow: FakeNotificationsWork) -> dict:
    return uow.mail.rows[(MAIL.order_id, MAIL.kind)]


async def test_an_order_mail_is_sent_and_recorded_once_whatever_is_redelivered():
    uow, smtp = FakeNotificationsWork(), FakeSmtpServer()
    await handlers.send_order_mail(uow, smtp, MAIL)
    await handlers.send_order_mail(uow, smtp, MAIL)
    [message] = smtp.sent
    assert message["Message-ID"] == "<ord_1.order_confirmation@doorbuster.test>"
    assert (mail_row(uow)["status"], mail_row(uow)["attempts"]) == ("sent", 1)


async def test_a_failed_send_releases_the_claim_and_the_last_try_records_failed():
    uow, smtp = FakeNotificationsWork(), FakeSmtpServer({"ann@example.com": "down"})
    with pytest.raises(MailDeliveryError):
        await handlers.send_order_mail(uow, smtp, MAIL)
    assert mail_row(uow)["status"] == "retrying"
    with pytest.raises(MailDeliveryError):  # the retry takes the claim over and fails again
        await handlers.send_order_mail(uow, smtp, MAIL)
    assert mail_row(uow)["attempts"] == 2
    await handlers.mail_failed(uow, MAIL, MailDeliveryError("still down"))
    assert mail_row(uow)["status"] == "failed"
    assert [row["kind"] for row in await handlers.list_notifications(uow, "ord_1", None, 10)] == [
        "order_confirmation"
    ]


async def test_giving_up_on_anything_but_the_mail_server_records_nothing():
    uow, smtp = FakeNotificationsWork(), FakeSmtpServer()
    await handlers.send_order_mail(uow, smtp, MAIL)
    await handlers.mail_failed(uow, MAIL, handlers.MailInFlight("busy"))
    assert mail_row(uow)["status"] == "sent"


def sender(uow: FakeNotificationsWork, smtp: FakeSmtpServer, chunk: int = 2) -> CampaignSender:
    return CampaignSender(uow, smtp, Unlimited(), chunk=chunk, lease_seconds=30, connections=2)


async def new_campaign(uow: FakeNotificationsWork, *emails: str, batch_size: int = 3) -> dict:
    uow.subscribe(*emails)
    new = campaigns.NewCampaign("Black Friday", "50% off", batch_size)
    return dict(await campaigns.create_campaign(uow, new))


async def run_batches(uow: FakeNotificationsWork, smtp: FakeSmtpServer) -> None:
    for command in uow.sent_of(SendCampaignBatch):
        await batches.send_campaign_batch(sender(uow, smtp), command)


async def test_a_campaign_fans_out_one_batch_per_slice_of_the_audience():
    uow = FakeNotificationsWork()
    campaign = await new_campaign(uow, *(f"p{n}@example.com" for n in range(7)))
    assert (campaign["status"], campaign["total"]) == ("queued", 7)
    assert [m.batch for m in uow.sent_of(SendCampaignBatch)] == [0, 1, 2]


async def test_a_campaign_to_nobody_is_completed_at_once():
    uow = FakeNotificationsWork()
    campaign = await new_campaign(uow)
    assert campaign["status"] == "completed" and uow.sent == []


async def test_every_address_gets_the_campaign_once_and_the_campaign_completes():
    uow, smtp = FakeNotificationsWork(), FakeSmtpServer()
    campaign = await new_campaign(uow, *(f"p{n}@example.com" for n in range(5)))
    await run_batches(uow, smtp)
    await run_batches(uow, smtp)  # every batch delivered twice
    assert sorted(smtp.delivered) == sorted(f"p{n}@example.com" for n in range(5))
    row = uow.campaigns.rows[campaign["id"]]
    assert (row["status"], row["sent"], row["failed"]) == ("completed", 5, 0)


async def test_an_unsubscribed_address_is_skipped_and_a_refused_one_fails_alone():
    uow = FakeNotificationsWork()
    smtp = FakeSmtpServer({"b@example.com": "refused"})
    campaign = await new_campaign(uow, "a@example.com", "b@example.com", "c@example.com")
    await subscribers.unsubscribe(uow, "c@example.com")
    await run_batches(uow, smtp)
    assert smtp.delivered == ["a@example.com"]
    row = uow.campaigns.rows[campaign["id"]]
    assert (row["status"], row["sent"], row["failed"], row["skipped"]) == ("completed", 1, 1, 1)


async def test_a_server_outage_raises_for_the_retry_and_the_retry_sends_the_rest():
    uow, smtp = FakeNotificationsWork(), FakeSmtpServer({"b@example.com": "down"})
    campaign = await new_campaign(uow, "a@example.com", "b@example.com", "c@example.com")
    with pytest.raises(MailDeliveryError):
        await run_batches(uow, smtp)
    assert uow.campaigns.rows[campaign["id"]]["status"] == "sending"
    smtp.answers.clear()
    await run_batches(uow, smtp)
    assert sorted(smtp.delivered) == ["a@example.com", "b@example.com", "c@example.com"]
    assert uow.campaigns.rows[campaign["id"]]["status"] == "completed"


async def test_giving_up_records_the_rest_failed_so_the_campaign_completes():
    uow, smtp = FakeNotificationsWork(), FakeSmtpServer({"a@example.com": "down"})
    campaign = await new_campaign(uow, "a@example.com", "b@example.com")
    [command] = uow.sent_of(SendCampaignBatch)
    with pytest.raises(MailDeliveryError) as failure:
        await batches.send_campaign_batch(sender(uow, smtp), command)
    await batches.give_up(sender(uow, smtp), command, failure.value)
    row = uow.campaigns.rows[campaign["id"]]
    # b went over the batch's other connection; a is given up on.
    assert (row["status"], row["sent"], row["failed"]) == ("completed", 1, 1)
    given_up = [d["email"] for d in uow.deliveries.rows.values() if d["status"] == "failed"]
    assert given_up == ["a@example.com"]
    assert smtp.delivered == ["b@example.com"]


async def test_a_cancelled_campaign_sends_nothing_more_and_resume_cannot_restart_it():
    uow, smtp = FakeNotificationsWork(), FakeSmtpServer()
    campaign = await new_campaign(uow, "a@example.com", "b@example.com")
    await campaigns.cancel_campaign(uow, campaign["id"])
    await run_batches(uow, smtp)
    assert smtp.delivered == []
    with pytest.raises(CampaignFinished):
        await campaigns.resume_campaign(uow, campaign["id"])
    assert uow.campaigns.rows[campaign["id"]]["status"] == "cancelled"


async def test_resuming_a_paused_campaign_sends_its_unfinished_batches_again():
    uow, smtp = FakeNotificationsWork(), FakeSmtpServer()
    campaign = await new_campaign(uow, *(f"p{n}@example.com" for n in range(4)), batch_size=2)
    await campaigns.pause_campaign(uow, campaign["id"])
    uow.sent.clear()
    resumed = await campaigns.resume_campaign(uow, campaign["id"])
    assert resumed["status"] == "queued"
    assert [m.batch for m in uow.sent_of(SendCampaignBatch)] == [0, 1]
    await run_batches(uow, smtp)
    assert len(smtp.delivered) == 4


async def test_an_import_adds_each_new_address_once_and_never_resubscribes():
    uow = FakeNotificationsWork()
    people = [subscribers.NewSubscriber(f"{name}@example.com") for name in ("a", "b", "a")]
    assert await subscribers.import_subscribers(uow, people) == subscribers.Imported(2, 1)
    await subscribers.unsubscribe(uow, "a@example.com")
    again = await subscribers.import_subscribers(uow, people)
    assert again == subscribers.Imported(0, 3)
    assert uow.people[1]["status"] == "unsubscribed"
    with pytest.raises(subscribers.SubscriberNotFound):
        await subscribers.unsubscribe(uow, "nobody@example.com")


LINKS = UnsubscribeLinks(b"k" * 32, "https://mail.test", "unsubscribe@shop.test")


async def test_a_one_click_token_unsubscribes_its_address_once_and_later_batches_skip_it():
    uow, smtp = FakeNotificationsWork(), FakeSmtpServer()
    campaign = await new_campaign(uow, "a@example.com", "b@example.com", "c@example.com")
    token = LINKS.token(campaign["id"], 3, "c@example.com")
    row = await subscribers.unsubscribe_one_click(uow, LINKS, token)
    assert (row["email"], row["status"]) == ("c@example.com", "unsubscribed")
    assert await subscribers.unsubscribe_one_click(uow, LINKS, token) == row  # idempotent
    await run_batches(uow, smtp)
    assert sorted(smtp.delivered) == ["a@example.com", "b@example.com"]
    assert uow.campaigns.rows[campaign["id"]]["skipped"] == 1


@pytest.mark.parametrize(
    "forge",
    [
        lambda token: token.replace(".3.", ".2."),  # another subscriber's id, same mac
        lambda token: token[:-2] + "xx",
        lambda token: token.replace(".3.", ".9."),  # nobody with that id
        lambda token: "not-a-token",
    ],
    ids=["other-id", "mac", "unknown-id", "malformed"],
)
async def test_a_forged_token_unsubscribes_nobody(forge):
    uow = FakeNotificationsWork()
    campaign = await new_campaign(uow, "a@example.com", "b@example.com", "c@example.com")
    with pytest.raises(subscribers.InvalidUnsubscribeToken):
        await subscribers.unsubscribe_one_click(
            uow, LINKS, forge(LINKS.token(campaign["id"], 3, "c@example.com"))
        )
    assert {person["status"] for person in uow.people.values()} == {"subscribed"}
