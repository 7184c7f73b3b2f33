"""DKIM keys: read one from configuration (a PEM file or text), say the DNS record that
publishes it, make a development one.

Two kinds, told apart by the key itself: RSA (PKCS#1 or PKCS#8 PEM, as `openssl genrsa`
writes it; RFC 6376) and Ed25519 (PKCS#8 PEM as `openssl genpkey -algorithm ed25519` writes
it, or dkimpy's base64 seed; RFC 8463). The notifications service signs with it
(services/notifications/signing.py); this module only handles the key material, so the ops CLI
and the dev tools can print a record or make a key without that service.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from email.utils import parseaddr
from pathlib import Path
from typing import Literal

import nacl.signing
from dkim.crypto import UnparsableKeyError, parse_private_key

# A PKCS#8 Ed25519 private key is this DER prefix and the 32-byte seed (RFC 8410).
_ED25519_PKCS8_PREFIX = bytes.fromhex("302e020100300506032b657004220420")
_PEM = re.compile(rb"-----BEGIN ([A-Z ]+)-----(.*?)-----END \1-----", re.DOTALL)
_RSA_ENCRYPTION_OID = bytes.fromhex("2a864886f70d010101")
# A TXT record's character-strings hold at most 255 bytes each (RFC 1035 3.3.14).
_TXT_STRING_MAX = 255


class DkimKeyError(ValueError):
    """The configured key cannot be read as an RSA or Ed25519 private key."""


@dataclass(frozen=True)
class DkimKey:
    kind: Literal["rsa", "ed25519"]
    # The key as dkimpy's sign() takes it: the PEM for RSA, the base64 seed for Ed25519.
    dkimpy_key: bytes
    # The `p=` of the DNS record: base64 SubjectPublicKeyInfo (RSA) or raw public key (Ed25519).
    public: str
    bits: int

    @property
    def algorithm(self) -> bytes:
        return b"rsa-sha256" if self.kind == "rsa" else b"ed25519-sha256"

    def txt_value(self) -> str:
        return f"v=DKIM1; k={self.kind}; p={self.public}"


def load_key(text: str | bytes) -> DkimKey:
    """An RSA or Ed25519 private key from its PEM (or dkimpy's base64 Ed25519 seed)."""
    data = text.encode("ascii") if isinstance(text, str) else text
    data = data.strip()
    pem = _PEM.search(data)
    if pem is None:
        return _ed25519(_b64(data, "not PEM and not a base64 Ed25519 seed"))
    if not pem.group(1).endswith(b"PRIVATE KEY"):
        raise DkimKeyError(f"a PEM {pem.group(1).decode()}, not a private key")
    der = _b64(b"".join(pem.group(2).split()), "PEM body is not base64")
    if der.startswith(_ED25519_PKCS8_PREFIX) and len(der) == len(_ED25519_PKCS8_PREFIX) + 32:
        return _ed25519(der[len(_ED25519_PKCS8_PREFIX) :])
    try:
        rsa = parse_private_key(der)
    except UnparsableKeyError as exc:
        raise DkimKeyError(f"neither an RSA nor an Ed25519 private key: {exc}") from exc
    modulus, exponent = rsa["modulus"], rsa["publicExponent"]
    public = base64.b64encode(_rsa_spki(modulus, exponent)).decode()
    return DkimKey("rsa", pem.group(0), public, modulus.bit_length())


def read_key(path: str | Path) -> DkimKey:
    try:
        return load_key(Path(path).read_bytes())
    except OSError as exc:
        raise DkimKeyError(f"cannot read {path}: {exc.strerror}") from exc


def new_ed25519_pem() -> bytes:
    """A fresh Ed25519 private key as PKCS#8 PEM (what `openssl genpkey` writes)."""
    seed = bytes(nacl.signing.SigningKey.generate())
    body = base64.encodebytes(_ED25519_PKCS8_PREFIX + seed)
    return b"-----BEGIN PRIVATE KEY-----\n" + body + b"-----END PRIVATE KEY-----\n"


def dns_record(key: DkimKey, selector: str, domain: str) -> str:
    """The zone-file line to publish: long values split into 255-byte strings."""
    value = key.txt_value()
    strings = [value[at : at + _TXT_STRING_MAX] for at in range(0, len(value), _TXT_STRING_MAX)]
    quoted = " ".join(f'"{part}"' for part in strings)
    return f"{selector}._domainkey.{domain}. IN TXT ( {quoted} )"


def signing_domain(configured: str | None, mail_from: str) -> str:
    """`d=`: DKIM_DOMAIN, else the domain of the From address (aligned, as DMARC wants)."""
    return configured or parseaddr(mail_from)[1].rpartition("@")[2]


def _ed25519(seed: bytes) -> DkimKey:
    if len(seed) != 32:
        raise DkimKeyError(f"an Ed25519 seed is 32 bytes, not {len(seed)}")
    public = bytes(nacl.signing.SigningKey(seed).verify_key)
    return DkimKey("ed25519", base64.b64encode(seed), base64.b64encode(public).decode(), 256)


def _b64(data: bytes, why: str) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DkimKeyError(why) from exc


def _der(tag: int, content: bytes) -> bytes:
    size = len(content)
    if size < 0x80:
        return bytes([tag, size]) + content
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + content


def _der_int(value: int) -> bytes:
    return _der(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def _rsa_spki(modulus: int, exponent: int) -> bytes:
    """SubjectPublicKeyInfo { rsaEncryption, RSAPublicKey { n, e } } in DER (RFC 8017)."""
    algorithm = _der(0x30, _der(0x06, _RSA_ENCRYPTION_OID) + _der(0x05, b""))
    public_key = _der(0x30, _der_int(modulus) + _der_int(exponent))
    return _der(0x30, algorithm + _der(0x03, b"\x00" + public_key))
