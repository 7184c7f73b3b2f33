"""Bounces and complaints on the running stack (issue 19 item 3): the sink refuses chosen
addresses (devtools/smtp_sink.py: `bounce-rcpt`, `bounce-data`, `block-rcpt`, `defer-once` in
the local part); a 5xx marks the address `bounced` (a 5.7 policy refusal only fails the mail),
a complaint through the admin route marks it `complained`, neither is in a later campaign, and
the campaign's counts show them; a 4xx is retried and the address gets its mail once."""

from __future__ import annotations

import pytest

from devtools.harness.shop import ADMIN, STOREFRONT
from devtools.harness.stack import Stack, db_fetch
from tests.support.campaigns import Campaigns, campaign_mail

pytestmark = pytest.mark.usefixtures("no_subscribers")


async def statuses(emails: list[str]) -> dict[str, str]:
    query = "SELECT email, status FROM subscribers WHERE email = ANY($1::text[])"
    rows = await db_fetch("notifications", query, emails)
    return {row["email"]: row["status"] for row in rows}


async def test_hard_bounces_are_suppressed_and_a_deferral_is_retried(
    stack: Stack, campaigns: Campaigns
):
    good = [f"fine{n:03d}@example.com" for n in range(600)]  # two batches of 500
    refused = ["gone.bounce-rcpt@example.com", "late.bounce-data@example.com"]
    blocked = "kept.block-rcpt@example.com"  # 554 5.7.1: about the sender, not the address
    deferred = "busy.defer-once@example.com"
    people = good[:300] + refused + [blocked, deferred] + good[300:]
    await campaigns.import_subscribers(people)

    first = await campaigns.create(subject="Doors open at six")
    done = await campaigns.wait_status(first["id"], {"completed"}, timeout=120)
    assert (done["total"], done["sent"], done["failed"], done["bounced"]) == (604, 601, 3, 2)
    assert (done["skipped"], done["complained"]) == (0, 0)
    received = campaign_mail(stack.maildir, first["id"])
    assert set(received) == {*good, deferred} and set(received.values()) == {1}
    assert await statuses(people[299:305]) == {
        good[299]: "subscribed",
        refused[0]: "bounced",
        refused[1]: "bounced",
        blocked: "subscribed",
        deferred: "subscribed",
        good[300]: "subscribed",
    }
    reason = await db_fetch(
        "notifications", "SELECT suppression FROM subscribers WHERE email = $1", refused[0]
    )
    assert reason[0]["suppression"].startswith("550 5.1.1")

    # A bounced address keeps its status through an unsubscribe and a re-import...
    kept = await campaigns.unsubscribe(refused[0])
    assert (kept.status_code, kept.json()["status"]) == (200, "bounced")
    assert await campaigns.import_subscribers(refused) == {"created": 0, "existing": 2}
    # ...and no later campaign mails it.
    second = await campaigns.create(subject="Last call")
    assert second["total"] == 602  # the blocked address is tried again
    finished = await campaigns.wait_status(second["id"], {"completed"}, timeout=120)
    assert (finished["sent"], finished["failed"], finished["bounced"]) == (601, 1, 0)
    assert not set(refused) & set(campaign_mail(stack.maildir, second["id"]))


async def test_a_complaint_suppresses_the_address_and_counts_in_its_campaign(
    campaigns: Campaigns,
):
    people = [f"reader{n}@example.com" for n in range(4)]
    await campaigns.import_subscribers(people)
    campaign_id = (await campaigns.create())["id"]
    await campaigns.wait_status(campaign_id, {"completed"}, timeout=60)

    complained = await campaigns.complain(people[0].upper(), campaign_id)  # normalised
    assert complained.status_code == 200, complained.text
    body = complained.json()
    assert (body["email"], body["status"]) == (people[0], "complained")
    assert body["suppressed_at"] and body["suppression"] == f"complaint about {campaign_id}"
    assert (await campaigns.complain(people[0], campaign_id)).json() == body  # idempotent
    assert (await campaigns.complain(people[1])).json()["status"] == "complained"  # no campaign
    counts = await campaigns.get(campaign_id)
    assert (counts["sent"], counts["complained"]) == (4, 1)

    later = await campaigns.create()
    assert later["total"] == 2


async def test_the_complaint_route_checks_keys_input_and_ids(campaigns: Campaigns):
    client = campaigns.client
    await campaigns.import_subscribers(["known@example.com"])
    url = "/v1/subscribers/known@example.com/complaint"
    assert (await client.post(url, json={})).status_code == 401
    assert (await client.post(url, json={}, headers=STOREFRONT)).status_code == 403
    problems = [
        ("/v1/subscribers/nobody@example.com/complaint", {}, 404, "subscriber-not-found"),
        ("/v1/subscribers/not-an-address/complaint", {}, 422, "invalid-email"),
        (url, {"campaign_id": "cmp_nope"}, 404, "campaign-not-found"),
        (url, {"campaign": "cmp_nope"}, 422, "validation-error"),
    ]
    for path, body, status, slug in problems:
        response = await client.post(path, json=body, headers=ADMIN)
        assert response.status_code == status, (path, body, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["type"].endswith(slug)
    assert (await statuses(["known@example.com"])) == {"known@example.com": "subscribed"}
