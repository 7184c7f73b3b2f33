"""Audiences (issue 19 item 4) on the fake unit of work: named lists filled by an import, a
campaign to one list or to everyone, each address once however many lists it is in, and a
list never resubscribing anyone."""

from __future__ import annotations

import pytest

from services.notifications import batches, campaigns, lists, subscribers
from services.notifications.batches import CampaignSender
from services.notifications.ratelimit import Unlimited
from shared.messages.notifications import SendCampaignBatch
from tests.unit.fakes.notifications import FakeNotificationsWork, FakeSmtpServer


def people(*emails: str) -> list[subscribers.NewSubscriber]:
    return [subscribers.NewSubscriber(email) for email in emails]


async def campaign(uow: FakeNotificationsWork, list_id: str | None) -> dict:
    new = campaigns.NewCampaign("Black Friday", "50% off", 2, list_id)
    return dict(await campaigns.create_campaign(uow, new))


async def send(uow: FakeNotificationsWork, smtp: FakeSmtpServer, campaign_id: str) -> None:
    sender = CampaignSender(uow, smtp, Unlimited(), chunk=2, lease_seconds=30, connections=2)
    for command in uow.sent_of(SendCampaignBatch):
        if command.campaign_id == campaign_id:
            await batches.send_campaign_batch(sender, command)


async def test_a_campaign_to_a_list_mails_its_members_once_even_if_they_are_in_two_lists():
    uow, smtp = FakeNotificationsWork(), FakeSmtpServer()
    tvs = (await lists.create_list(uow, "TV buyers"))["id"]
    vip = (await lists.create_list(uow, "VIP"))["id"]
    imported = await subscribers.import_subscribers(uow, people("a@x.test", "b@x.test"), tvs)
    assert imported == subscribers.Imported(created=2, existing=0, listed=2)
    both = await subscribers.import_subscribers(uow, people("b@x.test", "c@x.test"), vip)
    assert both == subscribers.Imported(created=1, existing=1, listed=2)
    await subscribers.import_subscribers(uow, people("d@x.test"))  # in no list

    to_vip = await campaign(uow, vip)
    assert (to_vip["total"], to_vip["list_id"]) == (2, vip)
    await send(uow, smtp, to_vip["id"])
    assert sorted(smtp.delivered) == ["b@x.test", "c@x.test"]

    # a joins VIP as well: now every address of TV buyers is in VIP too, still one mail each
    both_lists = await subscribers.import_subscribers(uow, people("a@x.test", "c@x.test"), vip)
    assert both_lists.listed == 1  # c was in it already
    smtp.delivered.clear()
    again = await campaign(uow, vip)
    await send(uow, smtp, again["id"])
    assert sorted(smtp.delivered) == ["a@x.test", "b@x.test", "c@x.test"]

    everyone = await campaign(uow, None)
    assert (everyone["total"], everyone["list_id"]) == (4, None)


async def test_a_list_never_resubscribes_and_an_unsubscribe_leaves_every_list():
    uow = FakeNotificationsWork()
    news = (await lists.create_list(uow, "News"))["id"]
    await subscribers.import_subscribers(uow, people("a@x.test", "b@x.test"))
    await subscribers.unsubscribe(uow, "a@x.test")
    added = await subscribers.import_subscribers(uow, people("a@x.test", "b@x.test"), news)
    assert (added.created, added.listed) == (0, 2)
    assert uow.people[1]["status"] == "unsubscribed"
    counted = await lists.get_list(uow, news)
    assert (counted["members"], counted["subscribed"]) == (2, 1)
    assert (await campaign(uow, news))["total"] == 1


async def test_names_are_unique_and_unknown_lists_change_nothing():
    uow = FakeNotificationsWork()
    first = await lists.create_list(uow, "VIP")
    with pytest.raises(lists.ListNameTaken) as taken:
        await lists.create_list(uow, "VIP")
    assert taken.value.existing["id"] == first["id"]
    with pytest.raises(lists.ListNotFound):
        await subscribers.import_subscribers(uow, people("a@x.test"), "lst_missing")
    assert uow.people == {}  # the import did not happen
    with pytest.raises(lists.ListNotFound):
        await campaign(uow, "lst_missing")
    assert uow.campaigns.rows == {} and uow.sent == []
    with pytest.raises(lists.ListNotFound):
        await lists.get_list(uow, "lst_missing")
    assert [row["name"] for row in await lists.list_lists(uow, None, 10)] == ["VIP"]
