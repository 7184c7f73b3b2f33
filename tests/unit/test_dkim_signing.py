"""DKIM: keys read as configured, the record to publish, and signatures that a receiver
(dkimpy's verify against that record) accepts on order mail and campaign mail, and rejects
once anything signed is changed."""

from __future__ import annotations

import base64
import json
import re
import stat
from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import SMTP, default

import pytest
from dkim.canonicalization import CanonicalizationPolicy
from dkim.crypto import parse_pem_private_key, parse_public_key

from devtools.dkim_dev_key import dev_dkim_env
from services.notifications.mailer import Mailer
from services.notifications.signing import DkimSigner, signer_from_settings
from services.notifications.templates import CampaignMail
from services.notifications.unsubscribe import UnsubscribeLinks
from shared.infra.dkim_key import DkimKeyError, dns_record, load_key, new_ed25519_pem, read_key
from shared.infra.settings import Settings
from tests.support.dkim import RSA_TEST_KEY, RSA_TEST_KEY_PKCS1, verifies

SELECTOR, DOMAIN = "s2026", "doorbuster.test"
CAMPAIGN = "cmp_" + "0123456789abcdef" * 2
LINKS = UnsubscribeLinks(b"k" * 32, "https://mail.doorbuster.test", "unsubscribe@doorbuster.test")
ED25519 = load_key(new_ed25519_pem())
RSA = read_key(RSA_TEST_KEY)
KEYS = pytest.mark.parametrize("key", [ED25519, RSA], ids=["ed25519", "rsa2048"])
DATE = datetime(2026, 11, 27, 6, 0, 1, tzinfo=UTC)


def campaign_mail(key, body: str = "Hello,\nall 50% off.\n") -> CampaignMail:
    signer = DkimSigner(key, SELECTOR, DOMAIN)
    subject = "Black Friday: prix réduits ☃, a subject long enough to be folded over two lines"
    sender = "Doorbuster <news@doorbuster.test>"
    return CampaignMail(CAMPAIGN, subject, body, sender, signer, LINKS, date=DATE)


@KEYS
def test_every_campaign_mail_verifies_with_its_own_headers_signed(key):
    mail = campaign_mail(key)
    ann, bob = mail.render(7, "ann@example.com"), mail.render(8, "bob@example.com")
    assert verifies(ann, key, SELECTOR, DOMAIN) and verifies(bob, key, SELECTOR, DOMAIN)
    signature = message_from_bytes(ann, policy=default)["DKIM-Signature"]
    tags = dict(part.strip().split("=", 1) for part in str(signature).split(";"))
    assert tags["d"] == DOMAIN and tags["s"] == SELECTOR and tags["c"] == "relaxed/relaxed"
    signed = tags["h"].split(":")
    for header in ("from", "subject", "date", "to", "message-id"):
        assert header in signed
    # RFC 8058 section 4: both unsubscribe headers under the signature.
    assert {"list-unsubscribe", "list-unsubscribe-post"} <= set(signed)
    other = message_from_bytes(bob, policy=default)["DKIM-Signature"]
    assert str(other).split("bh=")[1].split(";")[0] == tags["bh"]  # one body hash
    assert str(other).split("b=")[-1] != tags["b"]  # a header signature per mail


@KEYS
@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"To: ann@example.com", b"To: eve@example.com"),
        (b".7.", b".8."),  # another subscriber's unsubscribe link
        (b"all 50% off.", b"all 90% off."),
        (b"List-Unsubscribe-Post: List-Unsubscribe=One-Click", b"List-Unsubscribe-Post: x"),
        (b"From: Doorbuster", b"From: Doorbuster Deals"),
        (b"Date: Fri, 27 Nov 2026 06:00:01", b"Date: Fri, 27 Nov 2026 06:00:02"),
    ],
    ids=["to", "unsubscribe-link", "body", "one-click", "from", "date"],
)
def test_a_changed_signed_part_fails_verification(key, old, new):
    raw = campaign_mail(key).render(7, "ann@example.com")
    assert old in raw
    assert not verifies(raw.replace(old, new, 1), key, SELECTOR, DOMAIN)


def test_a_relay_refolding_and_rewriting_line_ends_keeps_the_signature():
    """relaxed/relaxed: what the pipelined client and relays do to a message verifies."""
    raw = campaign_mail(ED25519, body="Line one   \nLine two\n\n\n").render(7, "ann@example.com")
    relayed = raw.replace(b"\r\n", b"\n").replace(b"Line one   ", b"Line one")
    assert verifies(relayed, ED25519, SELECTOR, DOMAIN)


@pytest.mark.parametrize(
    "value",
    [b"ann@example.com", b" <a>, <b> ", b"folded\r\n\tline", b"two  spaces", b"tab\there", b""],
)
def test_the_per_mail_canonical_form_is_dkimpys(value):
    template = campaign_mail(ED25519)._template
    assert template is not None
    [(name, canonical)] = CanonicalizationPolicy.from_c_value(
        b"relaxed/relaxed"
    ).canonicalize_headers([(b"List-Unsubscribe", value)])
    assert template._canonical(b"List-Unsubscribe", value) == name + b":" + canonical


@KEYS
def test_a_non_ascii_body_goes_out_7_bit_safe_and_verifies(key):
    """An 8bit body would be re-encoded by a relay toward a 7-bit hop, breaking `bh=`."""
    raw = campaign_mail(key, body="Prix réduits ☃ : -50 %\n").render(7, "ann@example.com")
    assert raw.isascii() and b"Content-Transfer-Encoding: quoted-printable" in raw
    assert verifies(raw, key, SELECTOR, DOMAIN)
    parsed = message_from_bytes(raw, policy=default)
    assert parsed.get_content().rstrip() == "Prix réduits ☃ : -50 %"
    mailer = Mailer("127.0.0.1", 9, "Doorbuster <orders@doorbuster.test>")
    order = mailer.compose("ann@example.com", "Commande", "Merci, Zoë !", "o_1:order_confirmation")
    assert order.as_bytes(policy=SMTP).isascii()


def test_a_signature_from_another_key_fails():
    raw = campaign_mail(ED25519).render(7, "ann@example.com")
    assert not verifies(raw, load_key(new_ed25519_pem()), SELECTOR, DOMAIN)


@KEYS
def test_order_mail_is_signed_whole_and_has_no_unsubscribe_headers(key):
    signer = DkimSigner(key, SELECTOR, DOMAIN)
    mailer = Mailer("127.0.0.1", 9, "Doorbuster <orders@doorbuster.test>", signer=signer)
    message = mailer.compose(
        "ann@example.com", "Your order o_1", "Thanks!", "o_1:order_confirmation", DATE
    )
    raw = message.as_bytes(policy=SMTP)
    signed = signer.signature_header(raw) + raw
    assert verifies(signed, key, SELECTOR, DOMAIN)
    assert b"List-Unsubscribe" not in signed
    assert not verifies(signed.replace(b"Thanks!", b"Thanks?"), key, SELECTOR, DOMAIN)
    later = signed.replace(b"Date: Fri, 27 Nov 2026 06:00:01", b"Date: Fri, 27 Nov 2026 07:00:01")
    assert later != signed and not verifies(later, key, SELECTOR, DOMAIN)


def test_the_record_publishes_the_public_half_of_the_key():
    rsa = parse_pem_private_key(RSA_TEST_KEY.read_bytes())
    public = parse_public_key(base64.b64decode(RSA.public))
    assert (public["modulus"], public["publicExponent"]) == (rsa["modulus"], rsa["publicExponent"])
    assert RSA.bits == 2048 and RSA.txt_value().startswith("v=DKIM1; k=rsa; p=MIIB")
    pkcs1 = read_key(RSA_TEST_KEY_PKCS1)
    assert (pkcs1.kind, pkcs1.public, pkcs1.bits) == ("rsa", RSA.public, 2048)
    line = dns_record(RSA, SELECTOR, DOMAIN)
    assert line.startswith(f"{SELECTOR}._domainkey.{DOMAIN}. IN TXT ( ")
    strings = re.findall(r'"([^"]*)"', line)
    assert [len(part) <= 255 for part in strings] == [True, True]
    assert "".join(strings) == RSA.txt_value()
    assert ED25519.txt_value() == f"v=DKIM1; k=ed25519; p={ED25519.public}"
    assert len(base64.b64decode(ED25519.public)) == 32


def test_an_ed25519_key_reads_as_pem_or_as_dkimpy_seed():
    pem = new_ed25519_pem()
    key = load_key(pem)
    assert load_key(key.dkimpy_key) == key and load_key(pem.decode()) == key


@pytest.mark.parametrize(
    "text",
    [
        "not a key",
        "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----",
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
        base64.b64encode(b"x" * 31).decode(),
    ],
    ids=["text", "public-key", "garbage-der", "short-seed"],
)
def test_what_is_not_a_private_key_is_refused(text):
    with pytest.raises(DkimKeyError):
        load_key(text)


def test_the_signer_follows_the_settings(tmp_path):
    assert signer_from_settings(Settings(), "Shop <news@shop.test>") is None
    path = tmp_path / "k.pem"
    path.write_bytes(RSA_TEST_KEY.read_bytes())
    signer = signer_from_settings(Settings(dkim_private_key_file=str(path)), "Shop <n@shop.test>")
    assert signer is not None and (signer.domain, signer.selector) == (b"shop.test", b"doorbuster")
    settings = Settings(dkim_private_key=new_ed25519_pem().decode(), dkim_domain="mail.shop.test")
    signer = signer_from_settings(settings, "n@shop.test")
    assert signer is not None and signer.domain == b"mail.shop.test"
    assert signer.key.kind == "ed25519"


def test_the_development_key_is_made_once_and_kept_private(tmp_path):
    path = tmp_path / "dkim" / "dev.pem"
    env = dev_dkim_env({}, path)
    assert env == {"DKIM_PRIVATE_KEY_FILE": str(path)}
    made = path.read_bytes()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert dev_dkim_env({}, path) == env and path.read_bytes() == made
    assert read_key(path).kind == "ed25519"
    assert dev_dkim_env({"DKIM_PRIVATE_KEY_FILE": "/mine.pem"}, path) == {}
    # Set but empty: unsigned on purpose (the benchmark's unsigned arm).
    assert dev_dkim_env({"DKIM_PRIVATE_KEY_FILE": ""}, path) == {}


def dkim_record(monkeypatch, *args: str, **env: str):
    from typer.testing import CliRunner

    from ops.cli import app
    from shared.infra.settings import get_settings

    monkeypatch.delenv("DKIM_PRIVATE_KEY", raising=False)
    monkeypatch.delenv("DKIM_PRIVATE_KEY_FILE", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        return CliRunner().invoke(app, ["dkim-record", *args])
    finally:
        get_settings.cache_clear()


def test_the_cli_prints_the_record_of_the_configured_key(monkeypatch):
    result = dkim_record(
        monkeypatch,
        DKIM_PRIVATE_KEY_FILE=str(RSA_TEST_KEY),
        DKIM_SELECTOR="bf2026",
        MAIL_FROM="Shop <news@shop.test>",
    )
    assert result.exit_code == 0, result.output
    line = result.output.strip()
    assert line.startswith("bf2026._domainkey.shop.test. IN TXT ( ")
    assert "".join(re.findall(r'"([^"]*)"', line)) == RSA.txt_value()
    as_json = dkim_record(monkeypatch, "--json", DKIM_PRIVATE_KEY=new_ed25519_pem().decode())
    record = json.loads(as_json.output)
    assert record["name"] == "bf2026._domainkey.shop.test" and record["key"] == "ed25519"


def test_the_cli_says_when_no_key_or_a_bad_key_is_configured(monkeypatch, tmp_path):
    assert dkim_record(monkeypatch).exit_code == 1
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key")
    result = dkim_record(monkeypatch, DKIM_PRIVATE_KEY_FILE=str(bad))
    assert result.exit_code == 1 and "error: DKIM key:" in result.output
