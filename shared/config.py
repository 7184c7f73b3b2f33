"""Settings, read once per process from the environment (12-factor).

Every other module asks `get_settings()`; nothing else reads `os.environ`. Local defaults make
`make up` work on a laptop; `DOORBUSTER_ENV=production` refuses the unsafe ones.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

SERVICES = ("orders", "inventory", "notifications")
DEV_STOREFRONT_KEY = "dev-storefront"
DEV_ADMIN_KEY = "dev-admin"


def _split_keys(raw: str) -> tuple[str, ...]:
    return tuple(key.strip() for key in raw.split(",") if key.strip())


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    doorbuster_env: Literal["development", "test", "production"] = "development"

    rabbitmq_url: str = "amqp://guest:guest@127.0.0.1:5672//"
    # "classic" (local and tests: RabbitMQ 3.10, x-max-priority) or "quorum" (4.3+ clusters).
    queue_type: Literal["classic", "quorum"] = "classic"
    rabbitmq_management_url: str = "http://guest:guest@127.0.0.1:15672"

    # One server URL; each service gets its own database `<name>_<service>` on it, unless
    # its own URL is given (ORDERS_DATABASE_URL, ...).
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/doorbuster"
    orders_database_url: str | None = None
    inventory_database_url: str | None = None
    notifications_database_url: str | None = None
    db_pool_size: int = 10
    db_max_overflow: int = 10

    stripe_api_base: str = "http://127.0.0.1:12111"
    stripe_api_key: str = "sk_test_doorbuster"
    stripe_webhook_secret: str = "whsec_doorbuster_dev"  # noqa: S105 - the local emulator's
    stripe_timeout_seconds: float = 10.0

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    mail_from: str = "Doorbuster <orders@doorbuster.test>"
    smtp_timeout_seconds: float = 10.0

    # Transactional mail is retried with exponential backoff while SMTP fails, then
    # dead-lettered and shown as `failed`. Celery takes whole seconds for both (factor >= 1).
    mail_retry_backoff_seconds: int = Field(default=2, ge=1)
    mail_retry_backoff_max_seconds: int = Field(default=120, ge=1)
    mail_retry_jitter: bool = True
    mail_max_retries: int = Field(default=8, ge=0)

    # Campaigns (docs/campaigns.md). A batch task sends `campaign_batch_size` addresses over one
    # SMTP connection, in chunks of at most `campaign_chunk_max`; between chunks it checks the
    # campaign's status (pause, cancel) and takes tokens from the pool-wide rate limiter.
    campaign_batch_size: int = Field(default=500, ge=1, le=10_000)
    campaign_chunk_max: int = Field(default=50, ge=1, le=1_000)
    campaign_batch_max_retries: int = Field(default=12, ge=0)
    # A claim older than this belongs to a delivery that died mid-chunk: its outcome is unknown.
    campaign_claim_lease_seconds: float = Field(default=120.0, gt=0)
    # Mails per second for the whole bulk pool (all its processes share one token bucket in
    # PostgreSQL); 0 switches the limiter off. Burst: tokens a quiet bucket holds (default:
    # one chunk).
    bulk_mail_rate_per_second: float = Field(default=200.0, ge=0)
    bulk_mail_burst: float | None = Field(default=None, gt=0)

    sentry_dsn: str | None = None
    storefront_api_keys: str = ""
    admin_api_keys: str = ""

    # How long an order may hold reserved units before the sweep releases them.
    reservation_timeout_seconds: int = 15 * 60
    # The outbox relay re-publishes rows older than this that were not confirmed right after commit.
    outbox_relay_interval_seconds: float = 1.0
    outbox_relay_grace_seconds: float = 2.0

    log_level: str = "INFO"
    log_json: bool = True

    service_ports: dict[str, int] = Field(
        default_factory=lambda: {"orders": 8001, "inventory": 8002, "notifications": 8003}
    )

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.doorbuster_env == "production" and not (
            self.storefront_keys_configured and self.admin_keys_configured
        ):
            raise ValueError(
                "DOORBUSTER_ENV=production needs STOREFRONT_API_KEYS and ADMIN_API_KEYS"
            )
        return self

    @property
    def storefront_keys_configured(self) -> bool:
        return bool(_split_keys(self.storefront_api_keys))

    @property
    def admin_keys_configured(self) -> bool:
        return bool(_split_keys(self.admin_api_keys))

    @property
    def development_keys(self) -> bool:
        """True when no keys are configured and the dev keys are accepted."""
        return not (self.storefront_keys_configured or self.admin_keys_configured)

    def storefront_keys(self) -> tuple[str, ...]:
        if self.development_keys:
            return (DEV_STOREFRONT_KEY,)
        return _split_keys(self.storefront_api_keys)

    def admin_keys(self) -> tuple[str, ...]:
        if self.development_keys:
            return (DEV_ADMIN_KEY,)
        return _split_keys(self.admin_api_keys)

    def service_database_url(self, service: str) -> str:
        """The async SQLAlchemy URL of one service's own database."""
        if service not in SERVICES:
            raise ValueError(f"unknown service {service!r}")
        own = getattr(self, f"{service}_database_url")
        if own:
            return own
        base = make_url(self.database_url)
        return base.set(database=f"{base.database or 'doorbuster'}_{service}").render_as_string(
            hide_password=False
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
