"""DOORBUSTER_ENV=production refuses every development default, each named in one message."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.infra.settings import Settings
from tests.support.production import PRODUCTION_READY as SAFE

UNSAFE = [
    ("STRIPE_WEBHOOK_SECRET", {"stripe_webhook_secret": "whsec_doorbuster_dev"}),
    ("STRIPE_WEBHOOK_SECRET", {"stripe_webhook_secret": ""}),
    ("STRIPE_API_KEY", {"stripe_api_key": "sk_test_doorbuster"}),
    ("STRIPE_API_KEY", {"stripe_api_key": ""}),
    ("STRIPE_API_BASE", {"stripe_api_base": "http://127.0.0.1:12111"}),
    ("STRIPE_API_BASE", {"stripe_api_base": "http://localhost:12111"}),
    ("STRIPE_API_BASE", {"stripe_api_base": "https://stripe-emulator:12111"}),
    ("STRIPE_API_BASE", {"stripe_api_base": "http://api.stripe.com"}),
    ("RABBITMQ_URL", {"rabbitmq_url": "amqp://guest:guest@rabbit.internal:5672//"}),
    ("RABBITMQ_URL", {"rabbitmq_url": "amqp://rabbit.internal:5672//"}),
    ("STOREFRONT_API_KEYS", {"storefront_api_keys": ""}),
    ("STOREFRONT_API_KEYS", {"storefront_api_keys": "sf-1,dev-storefront"}),
    ("ADMIN_API_KEYS", {"admin_api_keys": ""}),
    ("ADMIN_API_KEYS", {"admin_api_keys": "dev-admin"}),
    ("SMTP_HOST", {"smtp_starttls": False}),
    ("DKIM_PRIVATE_KEY_FILE", {"dkim_private_key_file": None}),
    ("UNSUBSCRIBE_SECRET", {"unsubscribe_secret": "doorbuster-dev-unsubscribe"}),
    ("UNSUBSCRIBE_SECRET", {"unsubscribe_secret": "short"}),
    ("UNSUBSCRIBE_BASE_URL", {"unsubscribe_base_url": "http://mail.doorbuster.example"}),
]


def test_production_with_real_values_starts():
    assert Settings(**SAFE).doorbuster_env == "production"


@pytest.mark.parametrize(("variable", "values"), UNSAFE, ids=[v for v, _ in UNSAFE])
def test_production_refuses_each_development_value(variable, values):
    with pytest.raises(ValidationError) as refused:
        Settings(**{**SAFE, **values})
    message = str(refused.value)
    assert f"{variable} (" in message
    others = {name for name, _ in UNSAFE} - {variable}
    assert not [name for name in others if f"{name} (" in message]


def test_a_loopback_relay_without_tls_is_allowed():
    settings = Settings(**{**SAFE, "smtp_host": "127.0.0.1", "smtp_starttls": False})
    assert not settings.smtp_starttls


def test_production_names_every_offending_variable_at_once():
    with pytest.raises(ValidationError) as refused:
        Settings(doorbuster_env="production", smtp_host="relay.example.com")
    message = str(refused.value)
    for variable in {name for name, _ in UNSAFE}:
        assert f"{variable} (" in message


def test_a_dkim_key_given_as_pem_text_also_counts():
    settings = Settings(
        **{**SAFE, "dkim_private_key_file": None, "dkim_private_key": "-----BEGIN ..."}
    )
    assert settings.dkim_configured


def test_a_dkim_key_is_given_once():
    with pytest.raises(ValidationError, match="set one, not both"):
        Settings(dkim_private_key_file="/k.pem", dkim_private_key="-----BEGIN ...")


def test_development_keeps_its_defaults():
    settings = Settings(doorbuster_env="development")
    assert settings.stripe_webhook_secret == "whsec_doorbuster_dev"


def test_smtp_username_needs_a_password():
    with pytest.raises(ValidationError, match="SMTP_USERNAME and SMTP_PASSWORD"):
        Settings(smtp_username="mailer")
