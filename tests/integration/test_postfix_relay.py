"""A real MTA between the bulk pool and the sink (issue 19 item 5): a campaign goes through
Debian's Postfix, run as a private instance (devtools/postfix_relay.py) that relays to the
sink, and arrives as an inbox provider would receive it: every address once, the DKIM
signature (RSA-2048, as production signs) verifying against the published record, the
RFC 8058 headers intact and their link still working, one Date (ours, signed: the relay adds
none).

On a stack of its own (the session's ports + 64, its own vhost, databases and folders) of only
the processes a campaign uses (the sink, the notifications API, the bulk pool: on a shared
machine the rest cost a third of the test's time and CPU for nothing), whose bulk pool sends
to Postfix. Skips, saying why, only where Postfix cannot run (not installed: `make test`
installs Debian's package).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from email import message_from_bytes
from email.policy import default
from pathlib import Path

import httpx
import pytest

from devtools.harness.shop import Shop
from devtools.harness.stack import ROOT, SITE, SLOT, Stack, build_stack
from devtools.postfix_relay import PostfixRelay, unavailable
from services.notifications.mailer import BulkSession
from services.notifications.unsubscribe import ONE_CLICK
from shared.infra.dkim_key import read_key
from tests.support.campaigns import Campaigns, addresses, campaign_mail
from tests.support.dkim import RSA_TEST_KEY, signed_date, verifies

pytestmark = pytest.mark.timeout(180)
if (REASON := unavailable()) is not None:
    pytestmark = [pytestmark, pytest.mark.skip(reason=REASON)]

# + 64: its pools' metrics ports (base + 0/10/20/30 + 64) are none of the other stacks'
# (+ 40, 42, 50, 73, 85).
RELAY_SITE = SITE.beside("postfix", 64)
POSTFIX_PORT = 26025 + 100 * SLOT
MAILS = 2_000  # four batches of 500
# What a campaign runs on: the outbox relay is in the API, the batches in the bulk pool.
CAMPAIGN_PROCESSES = ("smtp", "notifications-api", "bulk-pool")
SELECTOR, DOMAIN = "doorbuster", "doorbuster.test"  # the settings' defaults
RECEIVED_BY_POSTFIX = b"by relay.doorbuster.test (Postfix) with ESMTP"


@pytest.fixture(scope="module")
def relay() -> Iterator[PostfixRelay]:
    postfix = PostfixRelay(
        ROOT / "var" / f"postfix{SLOT or ''}", POSTFIX_PORT, RELAY_SITE.ports.smtp
    )
    postfix.start()
    try:
        yield postfix
    finally:
        postfix.stop()


@pytest.fixture(scope="module")
def relay_stack(relay: PostfixRelay) -> Iterator[Stack]:
    """The campaign's processes of a stack, mail signed with the RSA-2048 test key, the bulk
    pool sending to Postfix, Postfix relaying to this stack's sink."""
    running = build_stack(RELAY_SITE, broker_proxy=False)
    running.processes = {name: running.processes[name] for name in CAMPAIGN_PROCESSES}
    running.env["DKIM_PRIVATE_KEY_FILE"] = str(RSA_TEST_KEY)
    running.processes["bulk-pool"].env["SMTP_PORT"] = str(POSTFIX_PORT)
    with running.started():
        yield running


@pytest.fixture(scope="module")
async def relay_campaigns(relay_stack: Stack) -> AsyncIterator[Campaigns]:
    async with Shop(relay_stack) as shop:
        yield Campaigns(shop.notifications)


async def test_postfix_offers_what_the_pipelined_client_uses(relay: PostfixRelay):
    async with BulkSession("127.0.0.1", relay.port, "orders@doorbuster.test", 10) as smtp:
        assert smtp.pipelining, "the relay must offer PIPELINING (RFC 2920)"


async def test_a_campaign_through_postfix_arrives_once_signed_and_unsubscribable(
    relay: PostfixRelay, relay_stack: Stack, relay_campaigns: Campaigns
):
    people = [person.lower() for person in addresses("relayed", MAILS)]
    await relay_campaigns.import_subscribers(people)
    started = time.monotonic()
    # Not ASCII: the body goes out quoted-printable, the subject RFC 2047-encoded; a relay
    # that converted or re-encoded either would break the signature.
    campaign = await relay_campaigns.create(subject="Prix cassés", body="Jusqu'à -50 % !\n")
    done = await relay_campaigns.wait_status(campaign["id"], {"completed"}, timeout=120)
    handed = time.monotonic() - started
    assert (done["sent"], done["failed"], done["skipped"]) == (MAILS, 0, 0)
    received = wait_delivered(relay, relay_stack.maildir, campaign["id"], MAILS)
    delivered = time.monotonic() - started
    print(
        f"\n{MAILS} mails through Postfix: handed over at {MAILS / handed:.0f} mails/s, "
        f"in the sink at {MAILS / delivered:.0f} mails/s"
    )

    assert set(received) == set(people) and set(received.values()) == {1}, relay.log_tail()
    key = read_key(relay_stack.env["DKIM_PRIVATE_KEY_FILE"])
    mails = list(messages(relay_stack.maildir))
    assert len(mails) == MAILS
    for raw in mails:
        assert RECEIVED_BY_POSTFIX in raw  # relayed, not sent to the sink directly
        assert verifies(raw, key, SELECTOR, DOMAIN), raw[:2000]
        signed_date(raw)  # exactly one, signed: Postfix added no second one
    mail = message_from_bytes(mails[0], policy=default)
    assert mail["List-Unsubscribe-Post"] == ONE_CLICK
    signed = str(mail["DKIM-Signature"]).split("h=")[1].split(";")[0].split(":")
    assert {"list-unsubscribe", "list-unsubscribe-post", "subject"} <= set(signed)
    assert str(mail["Subject"]) == "Prix cassés"
    assert "Jusqu'à -50 % !" in mail.get_content()

    # The link as relayed still unsubscribes its address.
    url = str(mail["List-Unsubscribe"]).split(">")[0].removeprefix("<")
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    async with httpx.AsyncClient(timeout=10) as client:
        clicked = await client.post(url, content=ONE_CLICK, headers=form)
    assert clicked.status_code == 200, clicked.text
    assert clicked.json()["email"] == str(mail["To"]).lower()


def wait_delivered(
    relay: PostfixRelay, maildir: Path, campaign_id: str, count: int
) -> Counter[str]:
    """The sink's mails of the campaign once Postfix has delivered `count` and holds none."""
    deadline = time.monotonic() + 60
    while True:
        received = campaign_mail(maildir, campaign_id)
        if sum(received.values()) >= count and relay.queued() == 0:
            return received
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{sum(received.values())} of {count} in the sink, {relay.queued()} queued in "
                f"Postfix after 60 s:\n{relay.log_tail()}"
            )
        time.sleep(0.2)


def messages(maildir: Path) -> Iterator[bytes]:
    for sub in ("new", "cur"):
        for entry in sorted((maildir / sub).iterdir()):
            yield entry.read_bytes()
