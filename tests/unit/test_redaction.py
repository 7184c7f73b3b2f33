"""The logging safety net: addresses, keys, secrets and card numbers never leave in a line."""

from __future__ import annotations

import io
import json
import logging

import pytest
import structlog

from shared.infra.observability import configure_logging
from shared.infra.redact import redact_text


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("sent to ann@example.com", "sent to a***@example.com"),
        ("<Ann.Lee+shop@mail.example.co.uk>", "<A***@mail.example.co.uk>"),
        ("Authorization: Bearer sf-live-123.abc", "Authorization: Bearer ***"),
        ("key sk_test_51Habc and whsec_abc123", "key sk_test_*** and whsec_***"),
        ("amqps://shop:s3cr3t@rabbit:5671/prod", "amqps://shop:***@rabbit:5671/prod"),
        ("card 4242 4242 4242 4242 declined", "card [card] declined"),
        ("pan 4000056655665556", "pan [card]"),
    ],
)
def test_secrets_and_personal_data_are_masked(raw, masked):
    assert redact_text(raw) == masked


@pytest.mark.parametrize(
    "kept",
    [
        "order ord_0f3a9c2b7d4e4f5a8b9c0d1e2f3a4b5c reserved",
        "published 1234567890123 tasks",  # 13 digits, not a card number (Luhn)
        "amqp://guest@127.0.0.1:5672//",
        "retry in 2.5s",
    ],
)
def test_ordinary_text_is_left_alone(kept):
    assert redact_text(kept) == kept


def test_every_log_line_is_redacted_stdlib_structlog_and_tracebacks(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    configure_logging("test", "INFO", json=True)
    try:
        logging.getLogger("third.party").warning("mail to %s failed", "bob@example.org")
        structlog.get_logger("ours").info("charged", customer="carol@example.net")
        try:
            raise ValueError("Authorization: Bearer top-secret-key for dan@example.com")
        except ValueError:
            logging.getLogger("uvicorn.error").exception("request failed")
    finally:
        logging.getLogger().handlers[:] = []
        structlog.reset_defaults()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    text = stream.getvalue()
    for secret in ("bob@example.org", "carol@example.net", "top-secret-key", "dan@example.com"):
        assert secret not in text
    assert lines[0]["event"] == "mail to b***@example.org failed"
    assert lines[1]["customer"] == "c***@example.net"
    assert "Bearer ***" in lines[2]["exception"]
