"""Subjects and bodies of the transactional mails; the campaign message template."""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP

from services.notifications.mailer import mail_date
from services.notifications.signing import DkimSigner
from services.notifications.unsubscribe import ONE_CLICK, UnsubscribeLinks
from shared.messages.orders import SendOrderMail


def _money(amount: int | None, currency: str | None) -> str:
    if amount is None or currency is None:
        return "-"
    return f"{amount / 100:.2f} {currency.upper()}"


def render_order_mail(mail: SendOrderMail) -> tuple[str, str]:
    total = _money(mail.total, mail.currency)
    # Every body line stays within 78 characters whatever the order id (36 of them): plain
    # 7-bit text, which mailer.order_message writes without building an EmailMessage.
    texts = {
        "order_confirmation": (
            f"Your order {mail.order_id} is confirmed",
            f"Thank you! We charged {total}.\nOrder: {mail.order_id}",
        ),
        "payment_failed": (
            f"Payment for order {mail.order_id} failed",
            f"We could not charge your card ({mail.reason or 'declined'}).\n"
            f"Nothing was taken.\nOrder: {mail.order_id}",
        ),
        "order_rejected": (
            f"We could not take order {mail.order_id}",
            f"Sorry: {(mail.reason or 'unavailable').replace('_', ' ')}.\n"
            f"You were not charged.\nOrder: {mail.order_id}",
        ),
        "order_cancelled": (
            f"Order {mail.order_id} is cancelled",
            f"Your order was cancelled ({mail.reason or 'on request'}).\nOrder: {mail.order_id}",
        ),
    }
    return texts[mail.kind]


def seven_bit_cte(body: str) -> str | None:
    """Quoted-printable for a body that is not ASCII (else the library's choice): a signed
    8bit body that a relay converts for a 7-bit hop no longer matches its DKIM body hash, so
    signers send 7-bit-safe content (RFC 6376 5.3)."""
    return None if body.isascii() else "quoted-printable"


class CampaignMail:
    """A campaign's message, rendered once per batch; each recipient gets only its own header
    lines put in front. Building an `EmailMessage` per mail cost ~1.9 ms here, more than the
    SMTP exchange itself; splicing three header lines costs microseconds.

    With `links`, every mail carries RFC 8058 one-click unsubscribe (its own token in
    List-Unsubscribe, the shared List-Unsubscribe-Post); with `signer`, a DKIM signature over
    both, its body hash and common part computed once here (signing.py).

    `Date` is `date`, by default the time the template is made: a batch's send time, one value
    for all its mails, so it is a common header, signed once per batch, and no mail pays for
    formatting or hashing it (docs/campaigns.md, "Date").

    Addresses are normalised ASCII without line breaks (domain.normalise_email), so they can
    go into a header as they are.
    """

    def __init__(
        self,
        campaign_id: str,
        subject: str,
        body: str,
        sender: str,
        signer: DkimSigner | None = None,
        links: UnsubscribeLinks | None = None,
        date: datetime | None = None,
    ):
        message = EmailMessage()
        message["From"] = sender
        message["Subject"] = subject
        message["Date"] = mail_date(date)
        if links is not None:
            message["List-Unsubscribe-Post"] = ONE_CLICK
        message.set_content(body, cte=seven_bit_cte(body))
        self.campaign_id = campaign_id
        self._links = links
        self._common = message.as_bytes(policy=SMTP)
        own = (b"to", b"message-id") + ((b"list-unsubscribe",) if links else ())
        self._template = signer.template(self._common, own) if signer else None

    def key(self, email: str) -> str:
        """The `X-Doorbuster-Key`: one per campaign and address (a count > 1 is a duplicate)."""
        return f"{self.campaign_id}:{email}"

    def render(self, subscriber_id: int, email: str) -> bytes:
        own = [
            (b"To", email.encode("ascii")),
            (b"Message-ID", f"<{self.campaign_id}.{subscriber_id}@doorbuster.test>".encode()),
        ]
        if self._links is not None:
            link = self._links.header(self.campaign_id, subscriber_id, email)
            own.append((b"List-Unsubscribe", link.encode("ascii")))
        lines = b"".join(name + b": " + value + b"\r\n" for name, value in own)
        key = f"X-Doorbuster-Key: {self.key(email)}\r\n".encode("ascii")
        signature = self._template.signature_header(own) if self._template else b""
        return signature + lines + key + self._common
