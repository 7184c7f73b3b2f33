"""A campaign message rendered once and addressed per recipient; how a chunk's SMTP failures
are sorted into sent, failed (never again) and released (sent by a later try)."""

from collections.abc import Sequence
from email import message_from_bytes
from email.policy import default

from services.notifications.batches import _deliver
from services.notifications.deliveries import Recipient
from services.notifications.mailer import (
    BulkSession,
    MailDeliveryError,
    OutcomeUnknown,
    RecipientRefused,
)
from services.notifications.templates import CampaignMail


def test_each_recipient_gets_its_own_headers_on_the_shared_message():
    mail = CampaignMail("cmp_1", "Prix réduits ☃", "Hello,\nall 50% off.", "Shop <news@shop.test>")
    raw = mail.render(7, "ann@example.com")
    parsed = message_from_bytes(raw, policy=default)
    assert parsed["To"] == "ann@example.com"
    assert parsed["Message-ID"] == "<cmp_1.7@doorbuster.test>"
    assert parsed["X-Doorbuster-Key"] == "cmp_1:ann@example.com"
    assert parsed["Subject"] == "Prix réduits ☃"
    assert parsed["From"] == "Shop <news@shop.test>"
    assert parsed.get_content().split() == ["Hello,", "all", "50%", "off."]
    assert raw.isascii() and b"\r\n" in raw
    assert mail.render(8, "bob@example.com").endswith(raw[raw.index(b"From:") :])


class FakeSession(BulkSession):
    """Answers per address: 'ok', 'refused', 'down' (not sent), 'lost' (lost during DATA)."""

    def __init__(self, answers: dict[str, str]):
        self.answers, self.delivered = answers, []

    async def send_all(self, mails: Sequence[tuple[str, bytes]]) -> list[Exception | None]:
        results: list[Exception | None] = []
        for to, _ in mails:
            answer = self.answers.get(to, "ok")
            if answer == "refused":
                results.append(RecipientRefused("550 no such user"))
                continue
            if answer == "down":
                return [*results, MailDeliveryError("connection refused")]
            if answer == "lost":
                return [*results, OutcomeUnknown("connection lost during DATA")]
            self.delivered.append(to)
            results.append(None)
        return results


def people(*names: str) -> list[Recipient]:
    return [Recipient(index, f"{name}@example.com") for index, name in enumerate(names)]


MAIL = CampaignMail("cmp_1", "s", "b", "news@shop.test")


async def test_a_refused_address_fails_alone_and_the_chunk_goes_on():
    outcome = await _deliver(
        [FakeSession({"b@example.com": "refused"})], MAIL, people("a", "b", "c")
    )
    assert (outcome.sent, list(outcome.failed), outcome.released) == ([0, 2], [1], [])
    assert outcome.error is None


async def test_a_connection_failure_releases_the_address_and_the_rest_of_the_chunk():
    outcome = await _deliver([FakeSession({"b@example.com": "down"})], MAIL, people("a", "b", "c"))
    assert (outcome.sent, outcome.failed, outcome.released) == ([0], {}, [1, 2])
    assert isinstance(outcome.error, MailDeliveryError)


async def test_a_mail_lost_during_data_is_never_sent_again():
    outcome = await _deliver([FakeSession({"b@example.com": "lost"})], MAIL, people("a", "b", "c"))
    assert (outcome.sent, list(outcome.failed), outcome.released) == ([0], [1], [2])
    assert outcome.failed[1].startswith("outcome unknown")


async def test_two_connections_share_a_chunk_and_one_failing_releases_only_its_share():
    first, second = FakeSession({"c@example.com": "down"}), FakeSession({})
    outcome = await _deliver([first, second], MAIL, people("a", "b", "c", "d", "e"))
    assert (first.delivered, second.delivered) == (
        ["a@example.com"],
        ["b@example.com", "d@example.com"],
    )
    assert (sorted(outcome.sent), outcome.failed, outcome.released) == ([0, 1, 3], {}, [2, 4])
    assert isinstance(outcome.error, MailDeliveryError)
