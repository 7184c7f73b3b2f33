"""The logging safety net: whatever a log line carries, it leaves without secrets or addresses.

Code logs ids, not personal data (email addresses go through `mask_email`), but exception
messages and third-party loggers quote what they like: SQL parameters, SMTP replies, URLs.
`redact` is the last structlog processor before rendering, for our lines and for every stdlib
logger routed through it, and masks email addresses, bearer tokens, Stripe secrets, passwords
in URLs and card numbers.
"""

from __future__ import annotations

import re
from typing import Any

_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@((?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,})\b")
_BEARER = re.compile(r"\b((?i:bearer))\s+[A-Za-z0-9._~+/=-]+")
_STRIPE_SECRET = re.compile(r"\b((?:sk|rk)_(?:test|live)|whsec)_[A-Za-z0-9]+")
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]*):[^@/\s]+@")
_CARD = re.compile(r"\b\d(?:[ -]?\d){12,18}\b")
# One scan that finds whether any of them could match: most strings of a line (timestamps,
# levels, ids) hold nothing to mask and skip the five substitutions.
_PATTERNS = (_EMAIL, _BEARER, _STRIPE_SECRET, _URL_PASSWORD, _CARD)
_ANY = re.compile("|".join(pattern.pattern for pattern in _PATTERNS))


def _luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _mask_card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return "[card]" if _luhn(digits) else match.group(0)


def redact_text(text: str) -> str:
    if not _ANY.search(text):
        return text
    text = _URL_PASSWORD.sub(r"\1:***@", text)
    text = _BEARER.sub(r"\1 ***", text)
    text = _STRIPE_SECRET.sub(r"\1_***", text)
    text = _EMAIL.sub(r"\1***@\2", text)
    return _CARD.sub(_mask_card, text)


def _redact(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {key: _redact(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_redact(item) for item in value)
    return value


def redact(_: object, __: str, event: dict[str, Any]) -> dict[str, Any]:
    """A structlog processor: every string in the event, nested ones included, masked."""
    return {key: _redact(value) for key, value in event.items()}


# Keys whose values are a person's address or name, wherever they sit in a Sentry event:
# request bodies (`customer.email`, subscribers' `name`), task kwargs (`to`), extras.
PERSONAL_KEYS = frozenset(
    {"email", "emails", "to", "customer_email", "name", "names", "first_name", "last_name"}
)
SCRUBBED = "[scrubbed]"


def _scrub(value: Any, key: object = None) -> Any:
    if isinstance(key, str) and key.lower() in PERSONAL_KEYS and value not in (None, ""):
        return SCRUBBED
    if isinstance(value, str):
        return redact_text(_EMAIL.sub("[email]", value))
    if isinstance(value, dict):
        return {name: _scrub(item, name) for name, item in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(item) for item in value]
    return value


def scrub_sentry_event(event: dict[str, Any], _hint: object = None) -> dict[str, Any]:
    """Sentry's `before_send`: no email address or name leaves in an error report.

    `send_default_pii=False` keeps cookies, headers and user ips out, but the FastAPI
    integration still sends request bodies and the Celery one task kwargs (`to=` an
    address), and messages quote what they like; so every string and every personal key
    of the whole event (request, extras, breadcrumbs, exception values) is scrubbed."""
    return _scrub(event)
