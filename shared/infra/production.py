"""What `DOORBUSTER_ENV=production` refuses: every development default that would let someone
who has read this repository in (a known webhook secret, the emulator's API key, the `guest`
broker user, the development API keys) or customer mail out in clear text.

`unsafe_settings` names every offending variable at once, so one start-up failure lists all
that must be set, instead of one per attempt.
"""

from __future__ import annotations

import ipaddress
from typing import Protocol
from urllib.parse import urlsplit

DEV_WEBHOOK_SECRET = "whsec_doorbuster_dev"  # noqa: S105 - the local emulator's
DEV_STRIPE_API_KEY = "sk_test_doorbuster"
DEV_STOREFRONT_KEY = "dev-storefront"
DEV_ADMIN_KEY = "dev-admin"
DEV_EMULATOR_PORT = 12111
DEV_UNSUBSCRIBE_SECRET = "doorbuster-dev-unsubscribe"  # noqa: S105 - development only


class ProductionSettings(Protocol):
    stripe_webhook_secret: str
    stripe_api_key: str
    stripe_api_base: str
    rabbitmq_url: str
    storefront_api_keys: str
    admin_api_keys: str
    smtp_host: str
    smtp_starttls: bool
    dkim_private_key_file: str | None
    dkim_private_key: str | None
    unsubscribe_secret: str
    unsubscribe_base_url: str


def is_loopback(host: str | None) -> bool:
    if not host or host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def split_keys(raw: str) -> tuple[str, ...]:
    return tuple(key.strip() for key in raw.split(",") if key.strip())


def _keys_problem(raw: str, dev_key: str) -> str | None:
    keys = split_keys(raw)
    if not keys:
        return "unset"
    return "development value" if dev_key in keys else None


def _stripe_base_problem(base: str) -> str | None:
    url = urlsplit(base)
    if is_loopback(url.hostname) or url.port == DEV_EMULATOR_PORT:
        return "the local emulator"
    return "not https" if url.scheme != "https" else None


def _broker_problem(url: str) -> str | None:
    user = urlsplit(url).username
    if not user:
        return "no user (RabbitMQ's default is guest)"
    return "the guest user" if user == "guest" else None


def unsafe_settings(settings: ProductionSettings) -> list[str]:
    """`VARIABLE (why)` for every setting production must not run with."""
    found = {
        "STRIPE_WEBHOOK_SECRET": (
            "development value or unset"
            if settings.stripe_webhook_secret in ("", DEV_WEBHOOK_SECRET)
            else None
        ),
        "STRIPE_API_KEY": (
            "development value or unset"
            if settings.stripe_api_key in ("", DEV_STRIPE_API_KEY)
            else None
        ),
        "STRIPE_API_BASE": _stripe_base_problem(settings.stripe_api_base),
        "RABBITMQ_URL": _broker_problem(settings.rabbitmq_url),
        "STOREFRONT_API_KEYS": _keys_problem(settings.storefront_api_keys, DEV_STOREFRONT_KEY),
        "ADMIN_API_KEYS": _keys_problem(settings.admin_api_keys, DEV_ADMIN_KEY),
        "SMTP_HOST": (
            "a non-loopback relay without TLS (set SMTP_STARTTLS=true)"
            if not is_loopback(settings.smtp_host) and not settings.smtp_starttls
            else None
        ),
        # Gmail and Yahoo throttle or spam-folder unsigned bulk mail: no campaign goes out unsigned.
        "DKIM_PRIVATE_KEY_FILE": (
            "unset (or DKIM_PRIVATE_KEY): bulk mail is never sent unsigned"
            if not (settings.dkim_private_key_file or settings.dkim_private_key)
            else None
        ),
        "UNSUBSCRIBE_SECRET": _secret_problem(settings.unsubscribe_secret, DEV_UNSUBSCRIBE_SECRET),
        "UNSUBSCRIBE_BASE_URL": (
            "not https (RFC 8058 one-click needs an HTTPS URL)"
            if urlsplit(settings.unsubscribe_base_url).scheme != "https"
            else None
        ),
    }
    return [f"{name} ({why})" for name, why in found.items() if why]


def _secret_problem(secret: str, dev_value: str) -> str | None:
    if secret in ("", dev_value):
        return "development value or unset"
    return "shorter than 32 characters" if len(secret) < 32 else None
