"""A campaign message rendered once and addressed per recipient; how a chunk's SMTP failures
are sorted into sent, failed (never again) and released (sent by a later try)."""

from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import default

import pytest

from services.notifications.batches import _deliver
from services.notifications.mailer import (
    BulkSession,
    MailDeliveryError,
    RecipientRefused,
)
from services.notifications.repository.deliveries import Recipient
from services.notifications.templates import CampaignMail
from tests.unit.fakes.notifications import FakeSmtpServer


def test_each_recipient_gets_its_own_headers_on_the_shared_message():
    sent_at = datetime(2026, 11, 27, 6, 0, 1, 500_000, tzinfo=UTC)
    mail = CampaignMail(
        "cmp_1", "Prix réduits ☃", "Hello,\nall 50% off.", "Shop <news@shop.test>", date=sent_at
    )
    raw = mail.render(7, "ann@example.com")
    parsed = message_from_bytes(raw, policy=default)
    assert parsed["To"] == "ann@example.com"
    # The batch's send time, to the second: one Date for all its mails, in the shared part.
    assert b"\r\nDate: Fri, 27 Nov 2026 06:00:01 +0000\r\n" in raw[raw.index(b"From:") :]
    assert parsed["Message-ID"] == "<cmp_1.7@doorbuster.test>"
    assert parsed["X-Doorbuster-Key"] == "cmp_1:ann@example.com"
    assert parsed["Subject"] == "Prix réduits ☃"
    assert parsed["From"] == "Shop <news@shop.test>"
    assert parsed.get_content().split() == ["Hello,", "all", "50%", "off."]
    assert raw.isascii() and b"\r\n" in raw
    assert mail.render(8, "bob@example.com").endswith(raw[raw.index(b"From:") :])


def session(answers: dict[str, str]) -> BulkSession:
    """One connection to a server that answers per address (tests/unit/fakes/notifications)."""
    return FakeSmtpServer(answers).session()


def people(*names: str) -> list[Recipient]:
    return [Recipient(index, f"{name}@example.com") for index, name in enumerate(names)]


MAIL = CampaignMail("cmp_1", "s", "b", "news@shop.test")


@pytest.mark.parametrize("answer", ["refused", "rejected"], ids=["rcpt", "data"])
async def test_a_refused_address_bounces_alone_and_the_chunk_goes_on(answer: str):
    outcome = await _deliver([session({"b@example.com": answer})], MAIL, people("a", "b", "c"))
    assert (outcome.sent, list(outcome.bounced), outcome.released) == ([0, 2], [1], [])
    assert outcome.failed == {} and outcome.error is None
    assert outcome.bounced[1].startswith("55")


@pytest.mark.parametrize("answer", ["sender", "blocked"], ids=["mail-from", "policy-5.7"])
async def test_a_refusal_of_the_sender_fails_the_mail_but_is_no_bounce_of_the_address(answer):
    outcome = await _deliver([session({"b@example.com": answer})], MAIL, people("a", "b", "c"))
    assert (outcome.sent, list(outcome.failed), outcome.bounced) == ([0, 2], [1], {})


@pytest.mark.parametrize(
    ("reply", "stage", "bounce"),
    [
        ("550 5.1.1 <a@x.test>: User unknown", "RCPT", True),
        ("550 User unknown", "RCPT", True),  # no enhanced code: the reply's class decides
        ("552 5.2.2 Mailbox full", "DATA", True),
        ("554 5.7.1 <a@x.test>: Relay access denied", "RCPT", False),
        ("550 5.7.26 Unauthenticated email is not accepted", "DATA", False),
        ("550 5.1.1 User unknown", "MAIL", False),
        ("invalid address 'a b@x.test'", None, False),
    ],
)
def test_which_refusals_are_bounces(reply: str, stage: str | None, bounce: bool):
    assert RecipientRefused(reply, stage).bounce is bounce


async def test_a_connection_failure_releases_the_address_and_the_rest_of_the_chunk():
    outcome = await _deliver([session({"b@example.com": "down"})], MAIL, people("a", "b", "c"))
    assert (outcome.sent, outcome.failed, outcome.released) == ([0], {}, [1, 2])
    assert isinstance(outcome.error, MailDeliveryError)


async def test_a_mail_lost_during_data_is_never_sent_again():
    outcome = await _deliver([session({"b@example.com": "lost"})], MAIL, people("a", "b", "c"))
    assert (outcome.sent, list(outcome.failed), outcome.released) == ([0], [1], [2])
    assert outcome.failed[1].startswith("outcome unknown")


async def test_two_connections_share_a_chunk_and_one_failing_releases_only_its_share():
    first, second = session({"c@example.com": "down"}), session({})
    outcome = await _deliver([first, second], MAIL, people("a", "b", "c", "d", "e"))
    assert (first.delivered, second.delivered) == (
        ["a@example.com"],
        ["b@example.com", "d@example.com"],
    )
    assert (sorted(outcome.sent), outcome.failed, outcome.released) == ([0, 1, 3], {}, [2, 4])
    assert isinstance(outcome.error, MailDeliveryError)
