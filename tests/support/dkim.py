"""Verify a DKIM signature as a receiver would, with the published record served from the
key itself instead of DNS (no public zone holds the test keys)."""

from __future__ import annotations

from datetime import datetime
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import dkim

from shared.infra.dkim_key import DkimKey

SUPPORT = Path(__file__).parent
# Test-only RSA-2048 keys (never used outside the tests): PKCS#8 and PKCS#1 PEM.
RSA_TEST_KEY = SUPPORT / "dkim_test_rsa2048.pem"
RSA_TEST_KEY_PKCS1 = SUPPORT / "dkim_test_rsa2048_pkcs1.pem"


def verifies(message: bytes, key: DkimKey, selector: str, domain: str) -> bool:
    """dkimpy's verify of the first DKIM-Signature, looking up only `selector._domainkey.domain`."""
    record_name = f"{selector}._domainkey.{domain}.".encode()

    def txt(name: bytes, timeout: int = 5) -> bytes | None:
        return key.txt_value().encode() if name == record_name else None

    return dkim.verify(message, dnsfunc=txt)


def signed_headers(message: bytes) -> list[str]:
    """The header names the first DKIM-Signature covers (its `h=`), as listed."""
    mail = message_from_bytes(message, _class=EmailMessage, policy=default)
    return str(mail["DKIM-Signature"]).split("h=")[1].split(";")[0].replace(" ", "").split(":")


def signed_date(message: bytes) -> datetime:
    """The message's `Date:` (RFC 5322 3.6), after checking there is exactly one, that it
    parses with a zone, and that the first signature's `h=` lists it once."""
    header_block = message.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0].lower()
    assert (b"\n" + header_block).count(b"\ndate:") == 1, message[:2000]
    mail = message_from_bytes(message, _class=EmailMessage, policy=default)
    [date] = mail.get_all("Date")
    assert not date.defects and date.datetime.tzinfo is not None, (str(date), date.defects)
    assert signed_headers(message).count("date") == 1, mail["DKIM-Signature"]
    return date.datetime
