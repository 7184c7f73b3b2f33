"""Settings production accepts: every value the development defaults would be refused for."""

from __future__ import annotations

from typing import Any

from shared.infra.settings import Settings

PRODUCTION_READY: dict[str, Any] = {
    "doorbuster_env": "production",
    "stripe_webhook_secret": "whsec_live_1",
    "stripe_api_key": "sk_live_1",
    "stripe_api_base": "https://api.stripe.com",
    "rabbitmq_url": "amqps://orders-api:pw@rabbit.internal:5671/doorbuster",
    "storefront_api_keys": "sf-1",
    "admin_api_keys": "ad-1",
    "smtp_host": "smtp-relay.mail.svc",
    "smtp_port": 587,
    "smtp_starttls": True,
    "dkim_private_key_file": "/etc/doorbuster/dkim/private.pem",
    "unsubscribe_secret": "4f1c0e7b9a2d8c3e5f6a7b8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f7081920",
    "unsubscribe_base_url": "https://mail.doorbuster.example",
}


def production_settings(**overrides: Any) -> Settings:
    return Settings(**{**PRODUCTION_READY, **overrides})
