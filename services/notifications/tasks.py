"""The notifications service's Celery surface: order mail (`notifications` pool) and campaign
batches (`bulk` pool)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import InterfaceError, OperationalError

from services.notifications import batches, handlers
from services.notifications.mailer import MailDeliveryError
from services.notifications.runtime import worker_runtime
from shared.infra.settings import Settings, get_settings
from shared.messages.notifications import SendCampaignBatch
from shared.messages.orders import SendOrderMail
from shared.messaging.tasks import handles


def retry_policy(
    settings: Settings, max_retries: int, *retry_for: type[Exception]
) -> dict[str, Any]:
    """Celery autoretry with exponential backoff (whole seconds), from settings."""
    return {
        "autoretry_for": retry_for,
        "retry_backoff": settings.mail_retry_backoff_seconds,
        "retry_backoff_max": settings.mail_retry_backoff_max_seconds,
        "retry_jitter": settings.mail_retry_jitter,
        "max_retries": max_retries,
    }


_settings = get_settings()
# While SMTP fails an order mail is retried with backoff (by default 2, 4, ... 120 s: at most
# about 6 minutes, half that on average with jitter), then dead-lettered and shown as `failed`.
MAIL_RETRY = retry_policy(
    _settings, _settings.mail_max_retries, MailDeliveryError, handlers.MailInFlight
)
# A batch waits longer (campaigns are not urgent); a database blip is retried as well.
BATCH_RETRY = retry_policy(
    _settings,
    _settings.campaign_batch_max_retries,
    MailDeliveryError,
    batches.BatchInFlight,
    OperationalError,
    InterfaceError,
)


async def _order_mail_failed(mail: SendOrderMail, error: Exception) -> None:
    await handlers.mail_failed((await worker_runtime.get()).uow(), mail, error)


async def _batch_failed(command: SendCampaignBatch, error: Exception) -> None:
    await batches.give_up((await worker_runtime.get()).campaign_sender(), command, error)


@handles(SendOrderMail, give_up=_order_mail_failed, **MAIL_RETRY)
async def send_order_mail(mail: SendOrderMail) -> None:
    """Send one order mail, at most once per order and kind."""
    runtime = await worker_runtime.get()
    await handlers.send_order_mail(runtime.uow(), runtime.mailer, mail)


@handles(SendCampaignBatch, give_up=_batch_failed, **BATCH_RETRY)
async def send_campaign_batch(command: SendCampaignBatch) -> None:
    """Send what is left of one campaign batch over one SMTP connection, throttled."""
    runtime = await worker_runtime.get()
    await batches.send_campaign_batch(runtime.campaign_sender(), command)
