"""STARTTLS and AUTH towards a real relay, for order mail and campaign batches alike (both
over our pipelining client, `mailer.BulkSession`). Locally the sink takes plain SMTP;
production refuses a non-loopback relay without STARTTLS (shared/infra/production.py)."""

from __future__ import annotations

import base64
import ssl
from dataclasses import dataclass
from functools import cached_property

from shared.infra.settings import Settings


@dataclass(frozen=True)
class SmtpSecurity:
    starttls: bool = False
    ca_file: str | None = None  # None: the system's CAs
    username: str | None = None
    password: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpSecurity:
        return cls(
            settings.smtp_starttls,
            settings.smtp_ca_file,
            settings.smtp_username,
            settings.smtp_password,
        )

    @cached_property
    def tls_context(self) -> ssl.SSLContext | None:
        """Made once: loading the CAs per mail would cost more than the mail."""
        if not self.starttls:
            return None
        return ssl.create_default_context(cafile=self.ca_file)

    def auth_plain_command(self) -> bytes | None:
        """RFC 4616 `AUTH PLAIN` with the credentials, or None without them."""
        if not self.username:
            return None
        token = f"\0{self.username}\0{self.password or ''}".encode()
        return b"AUTH PLAIN " + base64.b64encode(token) + b"\r\n"
