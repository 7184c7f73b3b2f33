"""Settings: local defaults, per-service databases, production refuses dev keys."""

import pytest
from pydantic import ValidationError

from shared.config import Settings


def test_each_service_gets_its_own_database():
    settings = Settings(database_url="postgresql+asyncpg://u:p@db:5432/shop")
    assert settings.service_database_url("orders").endswith("/shop_orders")
    assert settings.service_database_url("inventory").endswith("/shop_inventory")
    assert "u:p@db:5432" in settings.service_database_url("notifications")


def test_a_service_url_overrides_the_shared_one():
    settings = Settings(orders_database_url="postgresql+asyncpg://x/own")
    assert settings.service_database_url("orders") == "postgresql+asyncpg://x/own"


def test_development_mode_accepts_only_the_dev_keys():
    settings = Settings(storefront_api_keys="", admin_api_keys="")
    assert settings.development_keys
    assert settings.storefront_keys() == ("dev-storefront",)
    assert settings.admin_keys() == ("dev-admin",)


def test_configured_keys_replace_the_dev_keys():
    settings = Settings(storefront_api_keys="a, b", admin_api_keys="c")
    assert settings.storefront_keys() == ("a", "b")
    assert settings.admin_keys() == ("c",)


def test_production_refuses_to_start_without_keys():
    with pytest.raises(ValidationError, match=r"STOREFRONT_API_KEYS \(unset\)"):
        Settings(doorbuster_env="production", storefront_api_keys="", admin_api_keys="")
