"""DKIM signatures (RFC 6376) on every mail we send: dkimpy's parsing and canonicalization,
the private-key operation by PyNaCl (Ed25519) or OpenSSL through `cryptography` (RSA).

Mail is signed from a template: within one campaign batch every mail has the same body and the
same common headers (From, Subject, Date: the batch's send time, MIME lines,
List-Unsubscribe-Post), so the body hash `bh=`, the canonical common headers and the signature
header without `b=` are computed once per batch; per mail only its own headers (To,
Message-ID, List-Unsubscribe) are canonicalized and hashed and the digest signed. Those headers
must be covered: RFC 8058 section 4 asks for a signature over List-Unsubscribe and
List-Unsubscribe-Post, and List-Unsubscribe carries the recipient's own token; Date must be,
or a relay could change it under a valid signature. An order mail is a template of its own
with no per-mail part (every header signed, Date among them).

The private-key operation is the rest of the cost: Ed25519 about 15 us, RSA-2048 about 260 us
with OpenSSL, against 5.7 ms in dkimpy's pure-Python RSA (`dkim.sign`), which would have held
a bulk process below 200 mails/s (docs/campaigns.md, "DKIM").

Relaxed/relaxed canonicalization survives a relay's re-folding and re-encoding of line ends
(the pipelined client rewrites bare LFs as CRLF).
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Sequence

import dkim
import nacl.signing
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from dkim.canonicalization import CanonicalizationPolicy

from shared.infra.dkim_key import DkimKey, load_key, read_key, signing_domain
from shared.infra.settings import DkimSettings

CANONICALIZATION = b"relaxed/relaxed"
# The per-recipient headers of a campaign mail, signed after the common ones.
CAMPAIGN_OWN_HEADERS = (b"to", b"message-id", b"list-unsubscribe")
_RSA_PADDING = padding.PKCS1v15()  # RFC 6376 rsa-sha256: RSASSA-PKCS1-v1_5 over SHA-256
_PREHASHED_SHA256 = Prehashed(hashes.SHA256())


class DkimSigner:
    """A key, a selector and a domain: `d=` and `s=` of every signature, the record at
    `<selector>._domainkey.<domain>`."""

    def __init__(self, key: DkimKey, selector: str, domain: str):
        self.key, self.selector, self.domain = key, selector.encode(), domain.encode()
        self._ed25519: nacl.signing.SigningKey | None = None
        self._rsa: rsa.RSAPrivateKey | None = None
        if key.kind == "ed25519":
            self._ed25519 = nacl.signing.SigningKey(base64.b64decode(key.dkimpy_key))
        else:
            loaded = serialization.load_pem_private_key(key.dkimpy_key, password=None)
            assert isinstance(loaded, rsa.RSAPrivateKey)
            self._rsa = loaded

    def signature_header(self, message: bytes) -> bytes:
        """The `DKIM-Signature:` header line (CRLF-ended) to put in front of `message`, over
        every one of its headers (order mail)."""
        return self.template(message, ()).signature_header(())

    def template(self, common: bytes, own: Sequence[bytes] = CAMPAIGN_OWN_HEADERS) -> Template:
        """Sign many mails that are `common` (headers and body) with their own headers
        (named `own`, in that order) put in front."""
        return Template(self, common, tuple(own))

    def sign_digest(self, digest: hashlib._Hash) -> bytes:
        if self._ed25519 is not None:  # RFC 8463: Ed25519 over the SHA-256 digest
            return self._ed25519.sign(digest.digest()).signature
        assert self._rsa is not None
        return self._rsa.sign(digest.digest(), _RSA_PADDING, _PREHASHED_SHA256)


class Template:
    """The part of a signature shared by a campaign's mails, computed once."""

    def __init__(self, signer: DkimSigner, common: bytes, own: tuple[bytes, ...]):
        self._signer = signer
        self._policy = CanonicalizationPolicy.from_c_value(CANONICALIZATION)
        headers, body = dkim.rfc822_parse(common)
        common_names = tuple(name.lower() for name, _ in headers)
        if len(set(common_names)) < len(common_names):
            # A receiver hashes repeated names bottom-up (RFC 6376 5.4.2): not our top-down order.
            raise ValueError("a header repeated in a message to sign")
        body_hash = base64.b64encode(hashlib.sha256(self._policy.canonicalize_body(body)).digest())
        fields = [
            (b"v", b"1"),
            (b"a", signer.key.algorithm),
            (b"c", CANONICALIZATION),
            (b"d", signer.domain),
            (b"s", signer.selector),
            (b"t", str(int(time.time())).encode("ascii")),
            (b"h", b":".join(common_names + own)),
            (b"bh", body_hash),
        ]
        # Folded before b=, which stays on a line of its own: relaxed canonicalization unfolds
        # it, so the signed text is the same with or without the fold.
        self._head = b"DKIM-Signature: " + b"; ".join(b"=".join(f) for f in fields) + b";\r\n\tb="
        canonical = self._policy.canonicalize_headers([(b"DKIM-Signature", self._head[15:])])
        self._signature_field = canonical[0][0] + b":" + canonical[0][1].rstrip()
        self._prefix = hashlib.sha256()
        for name, value in headers:  # each value as parsed: its line end included
            self._prefix.update(self._canonical(name, value.removesuffix(b"\r\n")))

    def signature_header(self, own_headers: Sequence[tuple[bytes, bytes]]) -> bytes:
        """The `DKIM-Signature:` line for one mail whose own headers are `own_headers`
        (name, value), one of each name given to `template`, in that order."""
        digest = self._prefix.copy()
        for name, value in own_headers:
            digest.update(self._canonical(name, value))
        digest.update(self._signature_field)
        return self._head + base64.b64encode(self._signer.sign_digest(digest)) + b"\r\n"

    def _canonical(self, name: bytes, value: bytes) -> bytes:
        """Relaxed `name:value CRLF`. The values we build are one line with single spaces, for
        which that is lowercasing and stripping (a third of the per-mail cost, done by dkimpy's
        regular expressions); anything else goes through dkimpy."""
        if b"\r" in value or b"\n" in value or b"\t" in value or b"  " in value:
            [(lower, canonical)] = self._policy.canonicalize_headers([(name, value)])
            return lower + b":" + canonical
        return name.lower() + b":" + value.strip(b" ") + b"\r\n"


def signer_from_settings(settings: DkimSettings, mail_from: str) -> DkimSigner | None:
    """The configured signer, None when no key is configured (development and tests only:
    production refuses to start without one, shared/infra/production.py)."""
    if settings.dkim_private_key_file:
        key = read_key(settings.dkim_private_key_file)
    elif settings.dkim_private_key:
        key = load_key(settings.dkim_private_key)
    else:
        return None
    domain = signing_domain(settings.dkim_domain, mail_from)
    return DkimSigner(key, settings.dkim_selector, domain)
