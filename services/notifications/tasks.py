"""The notifications service's Celery surface."""

from __future__ import annotations

from services.notifications import handlers
from services.notifications.mailer import MailDeliveryError
from services.notifications.runtime import worker_runtime
from shared.contracts import SendOrderMail
from shared.queues import TaskName
from shared.tasks import task

# While SMTP fails the mail is retried with backoff (about 8 minutes in all), then
# dead-lettered and shown as `failed`.
MAIL_RETRY = {
    "autoretry_for": (MailDeliveryError, handlers.MailInFlight),
    "retry_backoff": 2,
    "retry_backoff_max": 120,
    "retry_jitter": True,
    "max_retries": 8,
}


@task(TaskName.SEND_ORDER_MAIL, SendOrderMail, **MAIL_RETRY)
async def send_order_mail(mail: SendOrderMail) -> None:
    """Send one order mail, at most once per order and kind."""
    runtime = await worker_runtime.get()
    await handlers.send_order_mail(runtime.uow(), runtime.mailer, mail)
