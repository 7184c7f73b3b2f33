"""Subjects and bodies of the transactional mails."""

from __future__ import annotations

from shared.contracts import SendOrderMail


def _money(amount: int | None, currency: str | None) -> str:
    if amount is None or currency is None:
        return "-"
    return f"{amount / 100:.2f} {currency.upper()}"


def render_order_mail(mail: SendOrderMail) -> tuple[str, str]:
    total = _money(mail.total, mail.currency)
    texts = {
        "order_confirmation": (
            f"Your order {mail.order_id} is confirmed",
            f"Thank you! We charged {total} for order {mail.order_id}.",
        ),
        "payment_failed": (
            f"Payment for order {mail.order_id} failed",
            f"We could not charge your card ({mail.reason or 'declined'}). Nothing was taken.",
        ),
        "order_rejected": (
            f"We could not take order {mail.order_id}",
            f"Sorry: {(mail.reason or 'unavailable').replace('_', ' ')}. You were not charged.",
        ),
        "order_cancelled": (
            f"Order {mail.order_id} is cancelled",
            f"Your order {mail.order_id} was cancelled ({mail.reason or 'on request'}).",
        ),
    }
    return texts[mail.kind]
