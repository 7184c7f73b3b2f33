"""One-click unsubscribe tokens: made per campaign and address under the secret, verified
against the address stored for the id they name; anything altered or forged is refused."""

from __future__ import annotations

from urllib.parse import unquote

import pytest

from services.notifications.unsubscribe import (
    TokenClaim,
    UnsubscribeLinks,
    form_fields,
    parse_token,
)
from shared.infra.settings import Settings

CAMPAIGN = "cmp_" + "0123456789abcdef" * 2
LINKS = UnsubscribeLinks(b"s" * 32, "https://mail.doorbuster.test", "unsubscribe@doorbuster.test")


def claim_of(token: str) -> TokenClaim:
    claim = parse_token(token)
    assert claim is not None
    return claim


def test_a_token_names_its_campaign_and_subscriber_and_holds_for_its_address():
    token = LINKS.token(CAMPAIGN, 42, "ann@example.com")
    claim = claim_of(token)
    assert (claim.campaign_id, claim.subscriber_id) == (CAMPAIGN, 42)
    assert LINKS.holds(claim, "ann@example.com")
    assert "ann" not in token  # the address stays out of the URL
    assert token == LINKS.token(CAMPAIGN, 42, "ann@example.com")  # deterministic: idempotent


@pytest.mark.parametrize(
    "forge",
    [
        lambda t: t.replace(".42.", ".43."),  # another subscriber
        lambda t: t.replace("cmp_0", "cmp_1"),  # another campaign
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # one character of the mac
    ],
    ids=["subscriber", "campaign", "mac"],
)
def test_an_altered_token_does_not_hold(forge):
    forged = forge(LINKS.token(CAMPAIGN, 42, "ann@example.com"))
    claim = parse_token(forged)
    assert claim is not None and not LINKS.holds(claim, "ann@example.com")


def test_a_token_holds_only_for_its_address_and_secret():
    claim = claim_of(LINKS.token(CAMPAIGN, 42, "ann@example.com"))
    assert not LINKS.holds(claim, "bob@example.com")
    other = UnsubscribeLinks(b"t" * 32, LINKS.base_url, LINKS.mailto)
    assert not other.holds(claim, "ann@example.com")


@pytest.mark.parametrize(
    "token",
    [
        "",
        "x",
        f"{CAMPAIGN}.42",
        f"{CAMPAIGN}.0.{'A' * 43}",
        f"{CAMPAIGN}.-1.{'A' * 43}",
        f"{CAMPAIGN}.{'9' * 19}.{'A' * 43}",
        f"cmp_x.42.{'A' * 43}",
        f"{CAMPAIGN}.42.{'A' * 42}",
        f"{CAMPAIGN}.42.{'A' * 43}\n",
    ],
)
def test_a_malformed_token_is_no_claim(token):
    assert parse_token(token) is None


def test_the_header_offers_the_https_url_first_and_a_mailto():
    header = LINKS.header(CAMPAIGN, 42, "ann@example.com")
    token = LINKS.token(CAMPAIGN, 42, "ann@example.com")
    url, mailto = header.split(", ")
    assert url == f"<https://mail.doorbuster.test/v1/unsubscribe/{token}>"
    assert mailto.startswith("<mailto:unsubscribe@doorbuster.test?subject=")
    assert unquote(mailto) == f"<mailto:unsubscribe@doorbuster.test?subject=unsubscribe {token}>"
    assert header.isascii() and " " not in mailto


def test_links_come_from_the_settings():
    links = UnsubscribeLinks.from_settings(
        Settings(mail_from="Shop <news@shop.test>", unsubscribe_base_url="https://m.shop.test/")
    )
    assert (links.base_url, links.mailto) == ("https://m.shop.test", "unsubscribe@shop.test")
    assert links.secret == b"doorbuster-dev-unsubscribe"


@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        ("application/x-www-form-urlencoded", b"List-Unsubscribe=One-Click", "One-Click"),
        (
            "application/x-www-form-urlencoded; charset=utf-8",
            b"a=1&List-Unsubscribe=One-Click",
            "One-Click",
        ),
        (
            "multipart/form-data; boundary=XyZ",
            b'--XyZ\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\n'
            b"One-Click\r\n--XyZ--\r\n",
            "One-Click",
        ),
        ("text/plain", b"List-Unsubscribe=One-Click", None),
        ("application/x-www-form-urlencoded", b"List-Unsubscribe=Yes", "Yes"),
        ("multipart/form-data", b"garbage", None),
    ],
    ids=["urlencoded", "urlencoded-more", "multipart", "plain-text", "other-value", "broken"],
)
def test_the_one_click_field_is_read_from_either_form_encoding(content_type, body, expected):
    assert form_fields(content_type, body).get("List-Unsubscribe") == expected
