"""Every kind of mail we send carries exactly one `Date:` (RFC 5322 3.6), which parses as the
time it was made and is under the DKIM signature (so a relay need not add one, unsigned).
Mails are taken as they leave through the real sending paths, only the SMTP server faked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.policy import default

import pytest

from services.notifications import batches, campaigns, handlers
from services.notifications.batches import CampaignSender
from services.notifications.ratelimit import Unlimited
from services.notifications.signing import DkimSigner
from services.notifications.unsubscribe import UnsubscribeLinks
from shared.infra.dkim_key import load_key, new_ed25519_pem
from shared.messages.notifications import SendCampaignBatch
from shared.messages.orders import SendOrderMail
from tests.support.dkim import signed_date, verifies
from tests.unit.fakes.notifications import FakeNotificationsWork, FakeSmtpServer

KEY = load_key(new_ed25519_pem())
SELECTOR, DOMAIN = "s2026", "shop.test"
LINKS = UnsubscribeLinks(b"k" * 32, "https://mail.shop.test", "unsubscribe@shop.test")
ORDER_MAILS = [
    SendOrderMail(order_id="ord_1", kind="order_confirmation", to="a@x.test", total=2500),
    SendOrderMail(order_id="ord_1", kind="payment_failed", to="a@x.test", reason="card_declined"),
    SendOrderMail(order_id="ord_1", kind="order_rejected", to="a@x.test", reason="out_of_stock"),
    SendOrderMail(order_id="ord_1", kind="order_cancelled", to="a@x.test", reason="refunded"),
]


def smtp_server() -> FakeSmtpServer:
    return FakeSmtpServer(signer=DkimSigner(KEY, SELECTOR, DOMAIN))


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)  # a Date has whole seconds


def assert_dated_and_signed(raw: bytes, made_after: datetime, made_before: datetime) -> datetime:
    """The one Date of `raw`, after checking it is signed, in UTC and within the window the
    mail was made in, and that the signature verifies."""
    sent_at = signed_date(raw)
    assert sent_at.utcoffset() == timedelta(0)
    assert made_after <= sent_at <= made_before
    assert verifies(raw, KEY, SELECTOR, DOMAIN)
    return sent_at


@pytest.mark.parametrize("mail", ORDER_MAILS, ids=[mail.kind for mail in ORDER_MAILS])
async def test_each_order_mail_has_one_signed_date(mail: SendOrderMail):
    smtp, before = smtp_server(), now()
    await handlers.send_order_mail(FakeNotificationsWork(), smtp, mail)
    [raw] = smtp.raw
    assert_dated_and_signed(raw, before, now())


async def test_an_order_mail_written_by_the_email_package_has_one_signed_date():
    """Not plain ASCII: `order_message` falls back to `EmailMessage` (`compose`)."""
    smtp, before = smtp_server(), now()
    raw = smtp.order_message("a@x.test", "Votre commande", "Réglé : 25,00 €", "ord_1:paid")
    await smtp.send(raw, to="a@x.test")
    assert_dated_and_signed(smtp.raw[0], before, now())


async def test_a_retried_order_mail_keeps_its_message_id_and_may_carry_a_new_date():
    smtp = smtp_server()
    first = smtp.order_message("a@x.test", "s", "b", "ord_1:paid", datetime(2026, 1, 1, tzinfo=UTC))
    again = smtp.order_message("a@x.test", "s", "b", "ord_1:paid")
    parsed = [message_from_bytes(raw, policy=default) for raw in (first, again)]
    assert parsed[0]["Message-ID"] == parsed[1]["Message-ID"]
    assert parsed[0]["Date"] != parsed[1]["Date"]


@pytest.mark.parametrize("links", [LINKS, None], ids=["one-click", "no-links"])
async def test_each_campaign_mail_has_one_signed_date_shared_by_its_batch(links):
    uow, smtp = FakeNotificationsWork(), smtp_server()
    uow.subscribe(*(f"p{n}@x.test" for n in range(5)))
    await campaigns.create_campaign(uow, campaigns.NewCampaign("Black Friday", "50% off", 3))
    sender = CampaignSender(uow, smtp, Unlimited(), chunk=2, lease_seconds=30, links=links)
    for command in uow.sent_of(SendCampaignBatch):
        before, sent = now(), len(smtp.raw)
        await batches.send_campaign_batch(sender, command)
        dates = {assert_dated_and_signed(raw, before, now()) for raw in smtp.raw[sent:]}
        assert len(smtp.raw) > sent and len(dates) == 1  # one Date per batch
    assert len(smtp.raw) == 5
