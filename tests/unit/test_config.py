"""Settings: local defaults, per-service databases, production refuses dev keys."""

import pytest
from pydantic import ValidationError

from shared.infra import settings as concerns
from shared.infra.settings import BrokerSettings, DatabaseSettings, DeploymentSettings, Settings

CONCERNS = [
    cls
    for cls in vars(concerns).values()
    if isinstance(cls, type)
    and issubclass(cls, DeploymentSettings)
    and cls not in (DeploymentSettings, Settings)
]


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


def test_a_concern_reads_only_its_own_variables(monkeypatch):
    monkeypatch.setenv("RABBITMQ_URL", "amqp://shop:pw@rabbit:5672//")
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://u@db/shop")
    broker = BrokerSettings()
    assert broker.rabbitmq_url == "amqp://shop:pw@rabbit:5672//"
    assert "database_url" not in BrokerSettings.model_fields
    assert DatabaseSettings().service_database_url("orders").endswith("/shop_orders")


def test_settings_is_every_concern_and_nothing_else():
    fields = [name for concern in CONCERNS for name in concern.model_fields]
    assert len(CONCERNS) >= 8
    assert set(Settings.model_fields) == set(fields)
    assert all(issubclass(Settings, concern) for concern in CONCERNS)
    assert "service_ports" not in Settings.model_fields


def test_each_variable_belongs_to_one_concern():
    owners: dict[str, list[str]] = {}
    for concern in CONCERNS:
        for name in set(concern.model_fields) - set(DeploymentSettings.model_fields):
            owners.setdefault(name, []).append(concern.__name__)
    assert {name: who for name, who in owners.items() if len(who) > 1} == {}
