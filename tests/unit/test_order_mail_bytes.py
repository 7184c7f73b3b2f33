"""The order mail spliced by hand is byte for byte the `EmailMessage` it replaces."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from email.policy import SMTP

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.notifications.mailer import Mailer, _plain
from services.notifications.templates import render_order_mail
from shared.messages.orders import SendOrderMail

MAILER = Mailer("smtp.test", 25, "Doorbuster <orders@doorbuster.test>")
DATE = datetime(2026, 11, 27, 6, 0, 1, 999_999, tzinfo=UTC)  # Black Friday's doors


def by_the_email_package(
    to: str, subject: str, body: str, key: str, date: datetime = DATE
) -> bytes:
    return MAILER.compose(to, subject, body, key, date).as_bytes(policy=SMTP)


ORDER = "ord_" + "0123456789abcdef" * 2  # as long as real order ids (new_order_id)


@pytest.mark.parametrize(
    "mail",
    [
        SendOrderMail(
            order_id=ORDER,
            kind="order_confirmation",
            to="someone.long@example.com",
            total=123456,
            currency="usd",
        ),
        SendOrderMail(order_id=ORDER, kind="payment_failed", to="a@b.c", reason="card_declined"),
        SendOrderMail(order_id=ORDER, kind="order_rejected", to="a@b.c", reason="unknown_sku"),
        SendOrderMail(
            order_id=ORDER, kind="order_cancelled", to="a@b.c", reason="reservation_expired"
        ),
        SendOrderMail(
            order_id="ord_1", kind="order_confirmation", to="a@b.c", total=2500, currency="usd"
        ),
        SendOrderMail(
            order_id="ord_2", kind="payment_failed", to="x.y+z@shop.example", reason="card_declined"
        ),
        SendOrderMail(order_id="ord_3", kind="order_rejected", to="a@b.c", reason="out_of_stock"),
        SendOrderMail(order_id="ord_4", kind="order_cancelled", to="a@b.c", reason="refunded"),
    ],
)
def test_every_order_template_is_spliced_as_the_email_package_writes_it(mail):
    subject, body = render_order_mail(mail)
    key = f"{mail.order_id}:{mail.kind}"
    assert _plain(mail.to, subject, body, key)
    raw = MAILER.order_message(mail.to, subject, body, key, DATE)
    assert raw == by_the_email_package(mail.to, subject, body, key)
    assert b"\r\nDate: Fri, 27 Nov 2026 06:00:01 +0000\r\n" in raw


printable = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=80)


@settings(max_examples=300, deadline=None)
@given(
    to=st.from_regex(r"[a-z0-9.+_-]{1,20}@[a-z0-9-]{1,20}\.[a-z]{2,6}", fullmatch=True),
    subject=printable,
    body=st.lists(printable, max_size=5).map("\n".join),
    key=st.from_regex(r"[a-z0-9_:]{1,70}", fullmatch=True),
    date=st.datetimes(
        min_value=datetime(1970, 1, 1), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
    ),
)
def test_whatever_is_spliced_equals_the_email_package_and_the_rest_falls_back(
    to, subject, body, key, date
):
    # Spliced or not, the bytes are the email package's.
    assert MAILER.order_message(to, subject, body, key, date) == by_the_email_package(
        to, subject, body, key, date
    )


def test_non_ascii_goes_through_the_email_package():
    subject, body = "Votre commande", "Merci ! Réglé : 25,00 €"
    assert not _plain("a@b.c", subject, body, "k")
    raw = MAILER.order_message("a@b.c", subject, body, "k", DATE)
    assert raw == by_the_email_package("a@b.c", subject, body, "k") and raw.isascii()


def test_the_date_is_written_in_utc_and_a_naive_time_is_refused():
    paris = DATE.astimezone(timezone(timedelta(hours=1)))
    assert MAILER.order_message("a@b.c", "s", "b", "k", paris) == MAILER.order_message(
        "a@b.c", "s", "b", "k", DATE
    )
    with pytest.raises(ValueError, match="aware"):
        MAILER.order_message("a@b.c", "s", "b", "k", datetime(2026, 11, 27, 6, 0))
