"""Settings, read once per process from the environment (12-factor), one class per concern.

Every concern (broker, database, Stripe, SMTP, mail, DKIM, unsubscribe links, HTTP keys, HTTP
limits, order flow, observability, ops) is a `BaseSettings` of its own that reads only its
variables, so a module can ask for the one it needs (`broker_ssl_context(BrokerSettings)`).
`Settings` composes them for the processes of this image: every service and pool reads the same
ConfigMap. Every other module asks `get_settings()`; nothing else reads `os.environ`. Local
defaults make `make up` work on a laptop; `DOORBUSTER_ENV=production` refuses the unsafe ones
(shared/infra/production.py).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

from shared.infra.production import (
    DEV_ADMIN_KEY,
    DEV_STOREFRONT_KEY,
    DEV_STRIPE_API_KEY,
    DEV_UNSUBSCRIBE_SECRET,
    DEV_WEBHOOK_SECRET,
    split_keys,
    unsafe_settings,
)

SERVICES = ("orders", "inventory", "notifications")


class DeploymentSettings(BaseSettings):
    """What every concern knows: which kind of deployment this is."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    doorbuster_env: Literal["development", "test", "production"] = "development"


class BrokerSettings(DeploymentSettings):
    rabbitmq_url: str = "amqp://guest:guest@127.0.0.1:5672//"
    # "classic" (local and tests: RabbitMQ 3.10, x-max-priority) or "quorum" (4.3+ clusters).
    queue_type: Literal["classic", "quorum"] = "classic"
    rabbitmq_management_url: str = "http://guest:guest@127.0.0.1:15672"
    # Seconds: the AMQP heartbeat every broker connection asks for (Celery's and aio-pika's;
    # a `heartbeat=` in RABBITMQ_URL wins for aio-pika). How soon a path that drops packets is
    # found dead: RabbitMQ drops a connection after two silent intervals, Celery after two,
    # aio-pika after three (plus one second each). RabbitMQ's default of 60 left a partition
    # of a minute unnoticed by anyone (docs/operations.md, faults n and o).
    broker_heartbeat_seconds: int = Field(default=10, ge=0)
    # TLS to the broker (`amqps://` URLs): a CA to verify it, and a client certificate and key
    # where it asks for one. Both the aio-pika publisher and Celery use them (shared/infra/tls.py).
    rabbitmq_ca_file: str | None = None
    rabbitmq_cert_file: str | None = None
    rabbitmq_key_file: str | None = None

    @model_validator(mode="after")
    def _broker_tls_files_in_pairs(self) -> BrokerSettings:
        if bool(self.rabbitmq_cert_file) != bool(self.rabbitmq_key_file):
            raise ValueError("RABBITMQ_CERT_FILE and RABBITMQ_KEY_FILE go together")
        return self

    @property
    def broker_uses_tls(self) -> bool:
        return self.rabbitmq_url.startswith("amqps://")


class DatabaseSettings(DeploymentSettings):
    # One server URL; each service gets its own database `<name>_<service>` on it, unless
    # its own URL is given (ORDERS_DATABASE_URL, ...).
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/doorbuster"
    orders_database_url: str | None = None
    inventory_database_url: str | None = None
    notifications_database_url: str | None = None
    # Per process. Every service and pool process has its own pool; PostgreSQL's default of 100
    # connections must hold them all (7 processes x 10 locally). All ten are kept open: an
    # overflow connection is closed when it is returned, and under load the API reconnected
    # for a share of its checkouts (2-3% of its CPU in a py-spy profile at 8 connections).
    db_pool_size: int = 10
    db_max_overflow: int = 0

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


class StripeSettings(DeploymentSettings):
    stripe_api_base: str = "http://127.0.0.1:12111"
    stripe_api_key: str = DEV_STRIPE_API_KEY
    stripe_webhook_secret: str = DEV_WEBHOOK_SECRET
    stripe_timeout_seconds: float = 10.0
    # Charges and refunds are retried while the provider fails (5xx, 429, network, timeouts)
    # with exponential backoff and full jitter (1, 2, 4, ... capped at 30 s; Celery takes whole
    # seconds), then dead-lettered to `payments.dlq`: by default up to about 2 minutes, half
    # that on average. Read once when a pool loads its tasks; nothing per charge.
    payment_retry_backoff_seconds: int = Field(default=1, ge=1)
    payment_retry_backoff_max_seconds: int = Field(default=30, ge=1)
    payment_retry_jitter: bool = True
    payment_max_retries: int = Field(default=8, ge=0)
    # How long a charge relies on Stripe remembering its idempotency key: Stripe may prune a
    # key once it is 24 hours old, and this is an hour less, for clocks. A charge for an
    # order older than this first looks its intents up by order id (billing.py).
    stripe_idempotency_trust_seconds: float = Field(default=23 * 3600.0, gt=0)
    # A payment event for an order whose charge is in flight waits this long, then reads the
    # order again: the charge task has most often recorded the same outcome by then, so the
    # provider is not asked (services/orders/webhooks.py). 0 asks at once.
    webhook_settle_grace_seconds: float = Field(default=1.0, ge=0, le=10)


class SmtpSettings(DeploymentSettings):
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    mail_from: str = "Doorbuster <orders@doorbuster.test>"
    smtp_timeout_seconds: float = 10.0
    # A real relay: STARTTLS (verified against SMTP_CA_FILE, or the system's CAs) and AUTH,
    # for order mail and campaigns alike. Production refuses a non-loopback relay without TLS.
    smtp_starttls: bool = False
    smtp_ca_file: str | None = None
    smtp_username: str | None = None
    smtp_password: str | None = None

    @model_validator(mode="after")
    def _smtp_auth_in_pairs(self) -> SmtpSettings:
        if bool(self.smtp_username) != bool(self.smtp_password):
            raise ValueError("SMTP_USERNAME and SMTP_PASSWORD go together")
        return self


class MailSettings(DeploymentSettings):
    """Retries of transactional mail, campaign batches and the bulk pool's rate limits."""

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
    # SMTP connections per batch: a chunk is shared out between them, so that while one waits
    # for the server's reply the others send (docs/campaigns.md, "Throughput").
    campaign_smtp_connections: int = Field(default=2, ge=1, le=16)
    campaign_batch_max_retries: int = Field(default=12, ge=0)
    # A claim older than this belongs to a delivery that died mid-chunk: its outcome is unknown.
    campaign_claim_lease_seconds: float = Field(default=120.0, gt=0)
    # Mails per second for the whole bulk pool (all its processes share one token bucket in
    # PostgreSQL); 0 switches the limiter off. Burst: tokens a quiet bucket holds (default:
    # one chunk).
    bulk_mail_rate_per_second: float = Field(default=200.0, ge=0)
    bulk_mail_burst: float | None = Field(default=None, gt=0)


class DkimSettings(DeploymentSettings):
    """DKIM signing of every mail, order mail and campaigns (docs/campaigns.md, "DKIM").

    The key is an RSA (2048 bits or more) or Ed25519 private key, as a PEM file or the PEM
    itself (from a Secret); none means unsigned mail, which only development and tests allow
    (`make up` and the test stack make a key under var/dkim/). The record to publish at
    `<selector>._domainkey.<domain>`: `doorbuster dkim-record`.
    """

    dkim_private_key_file: str | None = None
    dkim_private_key: str | None = None
    dkim_selector: str = Field(default="doorbuster", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    # The signing domain `d=`; unset: the domain of MAIL_FROM (aligned, as DMARC wants).
    dkim_domain: str | None = None

    @model_validator(mode="after")
    def _one_dkim_key(self) -> DkimSettings:
        if self.dkim_private_key_file and self.dkim_private_key:
            raise ValueError("DKIM_PRIVATE_KEY_FILE and DKIM_PRIVATE_KEY: set one, not both")
        return self

    @property
    def dkim_configured(self) -> bool:
        return bool(self.dkim_private_key_file or self.dkim_private_key)


class UnsubscribeSettings(DeploymentSettings):
    """RFC 8058 one-click unsubscribe in every campaign mail (docs/campaigns.md).

    The token in the link is an HMAC of the campaign and the address under
    UNSUBSCRIBE_SECRET: changing the secret voids the links of mails already sent.
    """

    unsubscribe_secret: str = DEV_UNSUBSCRIBE_SECRET
    # Where receivers reach POST /v1/unsubscribe/{token}: the notifications API's public URL.
    unsubscribe_base_url: str = "http://127.0.0.1:8003"
    # The List-Unsubscribe mailto: form; unset: unsubscribe@<the domain of MAIL_FROM>.
    unsubscribe_mailto: str | None = None


class ApiKeySettings(DeploymentSettings):
    """The HTTP callers' keys: comma-separated; none configured means the development keys."""

    storefront_api_keys: str = ""
    admin_api_keys: str = ""

    @property
    def storefront_keys_configured(self) -> bool:
        return bool(split_keys(self.storefront_api_keys))

    @property
    def admin_keys_configured(self) -> bool:
        return bool(split_keys(self.admin_api_keys))

    @property
    def development_keys(self) -> bool:
        """True when no keys are configured and the dev keys are accepted."""
        return not (self.storefront_keys_configured or self.admin_keys_configured)

    def storefront_keys(self) -> tuple[str, ...]:
        if self.development_keys:
            return (DEV_STOREFRONT_KEY,)
        return split_keys(self.storefront_api_keys)

    def admin_keys(self) -> tuple[str, ...]:
        if self.development_keys:
            return (DEV_ADMIN_KEY,)
        return split_keys(self.admin_api_keys)


class LimitSettings(DeploymentSettings):
    """What a process accepts before it refuses: body sizes, message sizes, queue depths."""

    # HTTP: the largest request body accepted (413 past it), read before anything parses it.
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    # Routes that take a bulk list (10,000 subscribers of up to 320-char addresses) get this.
    max_bulk_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    # Task messages: the largest body a pool accepts. A bigger one is dead-lettered by the
    # consumer before anything decodes it (workers/consumer.py). Our largest real task (a
    # reserve of 50 lines) is about 3 kB; RabbitMQ's own limit (max_message_size) is 128 MiB.
    max_message_bytes: int = Field(default=256 * 1024, ge=16 * 1024)
    # Runs of one redelivered task (its worker died each time) before it is dead-lettered
    # (`delivery_limit`), counted per worker in DELIVERY_COUNTS_DIR (default: the temp dir);
    # shared/messaging/deliveries.py. The same as quorum queues' x-delivery-limit.
    task_delivery_limit: int = Field(default=10, ge=1)
    delivery_counts_dir: str | None = None
    # Load shedding (shared/web/shedding.py): a route that feeds a queue answers 503 while more
    # than this many messages wait in it. Lowest limit sheds first: campaign creation (bulk)
    # long before checkout (orders). Depths are re-read every SHED_REFRESH_SECONDS.
    # Checkout sheds on the payments queue too: by depth (SHED_LIMIT_PAYMENTS), and while its
    # oldest charge has waited longer than this fraction of RESERVATION_TIMEOUT_SECONDS.
    shed_limit_payments: int = Field(default=20_000, ge=0)
    shed_payments_wait_fraction: float = Field(default=0.5, gt=0, le=1)
    shed_limit_orders: int = Field(default=50_000, ge=0)
    shed_limit_transactional: int = Field(default=20_000, ge=0)
    shed_limit_bulk: int = Field(default=1_000, ge=0)
    shed_refresh_seconds: float = Field(default=0.5, gt=0)
    shed_stale_seconds: float = Field(default=5.0, gt=0)
    shed_retry_after_seconds: int = Field(default=5, ge=1)


class OrderFlowSettings(DeploymentSettings):
    """The clocks of the order path: reservations and the outbox relay."""

    # How long an order may hold reserved units before the sweep releases them.
    reservation_timeout_seconds: int = 15 * 60
    reservation_sweep_interval_seconds: float = 30.0
    # Provider reconciliation (services/orders/reconcile.py), run by beat: how often, and how
    # far back it compares (every run lists the window's intents and refunds, 100 a request:
    # three days give a discrepancy 72 runs to be seen, and a stopped beat a weekend).
    reconcile_interval_seconds: float = Field(default=3600.0, gt=0)
    reconcile_lookback_seconds: int = Field(default=3 * 24 * 3600, ge=60)
    # The outbox relay re-publishes rows older than this that were not confirmed right after commit.
    outbox_relay_interval_seconds: float = 1.0
    outbox_relay_grace_seconds: float = 2.0
    # Published outbox rows are kept this long ("which tasks left for order X, and when"), then
    # the relay deletes them, oldest first, once a minute (shared/messaging/outbox.py).
    outbox_retention_seconds: int = Field(default=24 * 3600, ge=60)


class ObservabilitySettings(DeploymentSettings):
    sentry_dsn: str | None = None
    sentry_traces_sample_rate: float = 0.0
    log_level: str = "INFO"
    log_json: bool = True
    # Operations (deploy/README.md, docs/operations.md). Each worker process serves /metrics,
    # /healthz and /readyz on METRICS_PORT; `python -m workers` adds a per-pool offset (and
    # the instance index) unless --metrics-port is given; 0 turns the server off.
    metrics_port: int = 9100
    # Loopback by default; containers set 0.0.0.0 so Prometheus and the kubelet reach it.
    metrics_host: str = "127.0.0.1"
    # Set (an empty writable folder) for prefork pools: prometheus-client's multiprocess mode.
    prometheus_multiproc_dir: str | None = None
    outbox_lag_interval_seconds: float = 5.0


class OpsSettings(DeploymentSettings):
    # The ops CLI: the notifications API and the admin key it calls it with (default: the
    # first of ADMIN_API_KEYS, or the development key).
    notifications_api_url: str = "http://127.0.0.1:8003"
    ops_admin_key: str | None = None
    # `make flower`'s basic auth, `user:password` (Flower's own variable); unset: one per run.
    flower_basic_auth: str | None = None


class Settings(
    BrokerSettings,
    DatabaseSettings,
    StripeSettings,
    SmtpSettings,
    MailSettings,
    DkimSettings,
    UnsubscribeSettings,
    ApiKeySettings,
    LimitSettings,
    OrderFlowSettings,
    ObservabilitySettings,
    OpsSettings,
):
    """Every concern: what the services, the pools, the migrations and the ops CLI of this
    image read (one ConfigMap for all of them, deploy/k8s/base/config.yaml)."""

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.doorbuster_env == "production" and (unsafe := unsafe_settings(self)):
            raise ValueError(
                "DOORBUSTER_ENV=production refuses development or unset values: "
                + ", ".join(unsafe)
            )
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def load_settings() -> Settings:
    """The settings, or a clear one-line refusal to start (exit status 1, no traceback):
    every service and pool starts through this."""
    try:
        return get_settings()
    except ValidationError as exc:
        reasons = "; ".join(
            str(error["msg"]).removeprefix("Value error, ") for error in exc.errors()
        )
        raise SystemExit(f"doorbuster: refusing to start: {reasons}") from None
