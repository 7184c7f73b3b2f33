"""Campaigns against the real stack and SMTP sink: each address once, nothing to unsubscribed
addresses, pause/resume/cancel within a second."""

from __future__ import annotations

import asyncio
import time

import pytest

from devtools.harness.metrics import sample, scrape
from devtools.harness.shop import ADMIN, STOREFRONT
from devtools.harness.stack import Stack
from shared.messages.notifications import SendCampaignBatch
from shared.messaging.topology import QueueName
from tests.support.broker import queue_depths
from tests.support.campaigns import Campaigns, addresses, campaign_mail

pytestmark = pytest.mark.usefixtures("no_subscribers")


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_a_20000_address_campaign_reaches_each_address_exactly_once(
    stack: Stack, campaigns: Campaigns
):
    people = [person.lower() for person in addresses("bf", 20_000)]
    assert await campaigns.import_subscribers(people) == {"created": 20_000, "existing": 0}
    gone_before = people[::200]  # 100 unsubscribed before the campaign: not in its audience
    for person in gone_before:
        assert (await campaigns.unsubscribe(person)).status_code == 200

    started = time.monotonic()
    accepted = await campaigns.create(subject="Black Friday: everything must go")
    assert (accepted["status"], accepted["total"]) == ("queued", 19_900)
    # 20 addresses of the last batch unsubscribe while the first batches are sending
    gone_during = [person for person in people[-40:] if person not in gone_before][:20]
    for person in gone_during:
        assert (await campaigns.unsubscribe(person)).status_code == 200

    done = await campaigns.wait_status(accepted["id"], {"completed"}, timeout=500)
    elapsed = time.monotonic() - started
    print(
        f"\n19,900-address campaign completed in {elapsed:.1f} s = {19_880 / elapsed:.0f} mails/s"
    )

    assert (done["sent"], done["failed"], done["skipped"]) == (19_880, 0, 20)
    assert done["started_at"] and done["completed_at"]
    mail = campaign_mail(stack.maildir, accepted["id"])
    assert set(mail) == set(people) - set(gone_before) - set(gone_during)
    assert set(mail.values()) == {1}


async def test_pause_stops_within_a_second_and_resume_finishes_the_rest(
    stack: Stack, campaigns: Campaigns
):
    people = [person.lower() for person in addresses("pause", 5_000)]
    await campaigns.import_subscribers(people)
    campaign_id = (await campaigns.create())["id"]
    await campaigns.wait_sent(campaign_id, at_least=300)

    response = await campaigns.act(campaign_id, "pause")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "paused"
    await asyncio.sleep(1)
    settled = (await campaigns.get(campaign_id))["sent"]
    await asyncio.sleep(2)
    later = await campaigns.get(campaign_id)
    assert later["sent"] == settled < 5_000, "mail went out more than a second after the pause"
    assert later["status"] == "paused"
    assert sum(campaign_mail(stack.maildir, campaign_id).values()) == settled
    assert (await campaigns.act(campaign_id, "pause")).json()["status"] == "paused"

    resumed = await campaigns.act(campaign_id, "resume")
    assert resumed.status_code == 200 and resumed.json()["status"] == "sending"
    done = await campaigns.wait_status(campaign_id, {"completed"}, timeout=120)
    assert (done["sent"], done["failed"], done["skipped"]) == (5_000, 0, 0)
    mail = campaign_mail(stack.maildir, campaign_id)
    assert set(mail) == set(people) and set(mail.values()) == {1}

    for action in ("pause", "resume", "cancel"):
        refused = await campaigns.act(campaign_id, action)
        assert refused.status_code == 409, action
        assert refused.headers["content-type"].startswith("application/problem+json")


async def test_cancel_stops_within_a_second_for_good(stack: Stack, campaigns: Campaigns):
    await campaigns.import_subscribers(addresses("cancel", 5_000))
    campaign_id = (await campaigns.create())["id"]
    await campaigns.wait_sent(campaign_id, at_least=300)

    response = await campaigns.act(campaign_id, "cancel")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    await asyncio.sleep(1)
    settled = (await campaigns.get(campaign_id))["sent"]
    await asyncio.sleep(2)
    later = await campaigns.get(campaign_id)
    assert (later["status"], later["sent"]) == ("cancelled", settled)
    assert settled < 5_000 and later["completed_at"] is None
    mail = campaign_mail(stack.maildir, campaign_id)
    assert sum(mail.values()) == settled and set(mail.values()) == {1}

    assert (await campaigns.act(campaign_id, "cancel")).json()["status"] == "cancelled"
    assert (await campaigns.act(campaign_id, "resume")).status_code == 409
    assert (await campaigns.act(campaign_id, "pause")).status_code == 409


def batches_run(metrics_url: str) -> float:
    samples = scrape(metrics_url)
    labels = {"queue": QueueName.BULK.value, "task": SendCampaignBatch.name}
    return sum(
        sample(samples, "doorbuster_tasks_total", outcome=outcome, **labels) or 0
        for outcome in ("succeeded", "retried", "failed", "rejected", "ignored")
    )


@pytest.mark.parametrize("action", ["cancel", "pause"])
async def test_a_stopped_campaign_drains_its_queued_batches_at_once(
    stack: Stack, campaigns: Campaigns, action: str
):
    """60 batches queued, then stopped: each batch finds its campaign inactive and ends without
    sending or spending any of the pool's pace, so the bulk queue is empty within a few seconds
    (with a per-batch Celery rate limit of 5/s it took 12 s, and the next campaign waited)."""
    await campaigns.import_subscribers(addresses(f"drain-{action}", 10_000))
    await campaigns.import_subscribers(addresses(f"drain-{action}-more", 10_000))
    await campaigns.import_subscribers(addresses(f"drain-{action}-last", 10_000))
    metrics = stack.processes["bulk-pool"].metrics_url
    before = batches_run(metrics)
    created = await campaigns.create()
    campaign_id = created["id"]
    assert (await campaigns.act(campaign_id, action)).status_code == 200
    stopped = time.monotonic()
    batches = -(-created["total"] // stack.settings().campaign_batch_size)
    assert batches >= 60
    while batches_run(metrics) - before < batches:
        waited = time.monotonic() - stopped
        assert waited < 4, f"{batches_run(metrics) - before} of {batches} batches ran in {waited}s"
        await asyncio.sleep(0.1)
    assert not (await queue_depths(stack.env["RABBITMQ_URL"]))[QueueName.BULK.value]
    sent = (await campaigns.get(campaign_id))["sent"]
    assert sent < 30_000
    assert sum(campaign_mail(stack.maildir, campaign_id).values()) == sent


async def test_a_campaign_to_nobody_is_completed_at_once(campaigns: Campaigns):
    accepted = await campaigns.create()
    assert (accepted["status"], accepted["total"]) == ("completed", 0)
    campaign = await campaigns.get(accepted["id"])
    assert (campaign["sent"], campaign["completed_at"] is not None) == (0, True)


async def test_campaign_routes_check_keys_input_and_ids(campaigns: Campaigns):
    client = campaigns.client
    good = {"subject": "Hi", "body": "Deals"}
    assert (await client.post("/v1/campaigns", json=good)).status_code == 401
    assert (await client.post("/v1/campaigns", json=good, headers=STOREFRONT)).status_code == 403
    for bad in ({"subject": "", "body": "x"}, {"subject": "a\r\nBcc: x@y.z", "body": "x"}, {}):
        response = await client.post("/v1/campaigns", json=bad, headers=ADMIN)
        assert response.status_code == 422, bad
        assert response.headers["content-type"].startswith("application/problem+json")
    missing = await client.get("/v1/campaigns/cmp_nope", headers=ADMIN)
    assert missing.status_code == 404
    assert missing.json()["type"].endswith("campaign-not-found")
    assert (await campaigns.act("cmp_nope", "pause")).status_code == 404
