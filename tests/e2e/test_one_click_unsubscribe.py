"""Campaign mail as an inbox provider sees it (issue 19 items 1 and 2): DKIM-signed with the
configured key, RFC 8058 one-click unsubscribe headers and the one Date under the signature,
and the link in the mail unsubscribing its address without a key, so a later batch of a
running campaign skips it. Order mail is signed and dated too and carries no unsubscribe
header."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.policy import default

import httpx
import pytest

from devtools.harness.shop import Shop, unique_sku
from devtools.harness.stack import Stack
from services.notifications.unsubscribe import ONE_CLICK
from shared.infra.dkim_key import read_key
from tests.support.campaigns import (
    Campaigns,
    addresses,
    campaign_mail,
    campaign_message,
    message_with_key,
)
from tests.support.dkim import signed_date, verifies

pytestmark = pytest.mark.usefixtures("no_subscribers")
ONE_CLICK_FORM = {"Content-Type": "application/x-www-form-urlencoded"}
SELECTOR, DOMAIN = "doorbuster", "doorbuster.test"  # the settings' defaults: MAIL_FROM's domain
LINK = re.compile(r"^<(https?://[^>]+)>, <mailto:([^>?]+)\?subject=[^>]+>$")


def one_click_url(raw: bytes) -> str:
    header = message_from_bytes(raw, policy=default)["List-Unsubscribe"]
    match = LINK.match(str(header))
    assert match, header
    return match[1]


async def test_a_campaign_mail_is_signed_and_its_one_click_link_stops_later_batches(
    stack: Stack, campaigns: Campaigns
):
    key = read_key(stack.env["DKIM_PRIVATE_KEY_FILE"])
    people = [person.lower() for person in addresses("oneclick", 1_500)]  # 3 batches of 500
    await campaigns.import_subscribers(people)
    before = datetime.now(UTC).replace(microsecond=0)
    first = await campaigns.create(subject="Early deals", body="Doors open at six.\n")
    done = await campaigns.wait_status(first["id"], {"completed"}, timeout=120)
    assert done["sent"] == 1_500

    # Another campaign starts; held before its last batch runs.
    second = (await campaigns.create(subject="Black Friday", body="Everything must go.\n"))["id"]
    assert (await campaigns.act(second, "pause")).status_code == 200
    leaving = people[-1]  # the highest id: in the second campaign's last batch
    assert campaign_message(stack.maildir, second, leaving) is None

    raw = campaign_message(stack.maildir, first["id"], leaving)
    assert raw is not None
    assert verifies(raw, key, SELECTOR, DOMAIN)
    mail = message_from_bytes(raw, policy=default)
    assert mail["List-Unsubscribe-Post"] == ONE_CLICK
    signed = str(mail["DKIM-Signature"]).split("h=")[1].split(";")[0].split(":")
    assert {"list-unsubscribe", "list-unsubscribe-post", "from", "to"} <= set(signed)
    assert before <= signed_date(raw) <= datetime.now(UTC)  # the batch's send time
    url = one_click_url(raw)
    assert url.startswith(f"{stack.url('notifications')}/v1/unsubscribe/")
    assert not verifies(raw.replace(b"Doors open", b"Doors shut"), key, SELECTOR, DOMAIN)

    async with httpx.AsyncClient(timeout=10) as client:  # no API key: the token is the authority
        clicked = await client.post(url, content=ONE_CLICK, headers=ONE_CLICK_FORM)
        assert clicked.status_code == 200, clicked.text
        assert clicked.json()["email"] == leaving
        assert clicked.json()["status"] == "unsubscribed"
        again = await client.post(url, content=ONE_CLICK, headers=ONE_CLICK_FORM)
        assert again.status_code == 200 and again.json() == clicked.json()  # idempotent

    assert (await campaigns.act(second, "resume")).status_code == 200
    finished = await campaigns.wait_status(second, {"completed"}, timeout=120)
    assert (finished["sent"], finished["failed"], finished["skipped"]) == (1_499, 0, 1)
    received = campaign_mail(stack.maildir, second)
    assert set(received) == set(people) - {leaving} and set(received.values()) == {1}


async def test_a_forged_or_altered_link_is_refused_and_changes_nothing(
    stack: Stack, campaigns: Campaigns
):
    people = [person.lower() for person in addresses("forged", 2)]
    await campaigns.import_subscribers(people)
    campaign = await campaigns.create()
    await campaigns.wait_status(campaign["id"], {"completed"}, timeout=60)
    raw = campaign_message(stack.maildir, campaign["id"], people[0])
    assert raw is not None
    url = one_click_url(raw)
    token = url.rsplit("/", 1)[1]
    campaign_id, subscriber_id, mac = token.split(".")
    neighbour = f"{campaign_id}.{int(subscriber_id) + 1}.{mac}"  # the other address's id
    base = url.rsplit("/", 1)[0]
    forged = [f"{campaign_id}.{subscriber_id}.{'A' * 43}", neighbour, token[:-3], "nonsense"]

    async with httpx.AsyncClient(timeout=10) as client:
        for bad in forged:
            refused = await client.post(f"{base}/{bad}", content=ONE_CLICK, headers=ONE_CLICK_FORM)
            assert refused.status_code == 403, (bad, refused.text)
            assert refused.headers["content-type"].startswith("application/problem+json")
            problem = refused.json()
            assert problem["type"].endswith("/invalid-unsubscribe-token")
            assert problem["status"] == 403
        # The RFC 8058 body is required: a bare POST (a link scanner, say) changes nothing.
        bare = await client.post(url)
        assert bare.status_code == 422
        assert bare.json()["errors"][0]["field"] == "body.List-Unsubscribe"
        # Multipart, as some providers post it, works as well.
        form = await client.post(url, files={"List-Unsubscribe": (None, "One-Click")})
        assert form.status_code == 200 and form.json()["status"] == "unsubscribed"

    later = await campaigns.create()
    assert later["total"] == 1  # only the address that did not unsubscribe


async def test_order_mail_is_signed_and_carries_no_unsubscribe_header(stack: Stack, shop: Shop):
    key = read_key(stack.env["DKIM_PRIVATE_KEY_FILE"])
    sku = unique_sku("DKIM")
    await shop.put_product(sku, stock=5)
    placed = await shop.place_order([(sku, 1)])
    assert placed.status_code == 202, placed.text
    order_id = placed.json()["id"]
    assert (await shop.wait_final(order_id))["status"] == "paid"
    mail = await shop.wait_mail(order_id, "order_confirmation")
    assert mail["status"] == "sent"
    raw = message_with_key(stack.maildir, f"{order_id}:order_confirmation")
    assert raw is not None
    assert verifies(raw, key, SELECTOR, DOMAIN)
    assert timedelta(0) <= datetime.now(UTC) - signed_date(raw) < timedelta(minutes=2)
    assert b"List-Unsubscribe" not in raw
    assert not verifies(raw.replace(b"Thank you", b"Thank yo"), key, SELECTOR, DOMAIN)
