"""The notifications service's runtime: database, outbox, publisher, the mailer and the
campaign sender (with the bulk pool's shared rate limiter)."""

from __future__ import annotations

from services.notifications.batches import CampaignSender
from services.notifications.db import outbox
from services.notifications.domain import chunk_size
from services.notifications.mailer import Mailer
from services.notifications.ratelimit import bulk_limiter
from services.notifications.repository import NotificationsUnitOfWork
from services.notifications.signing import DkimSigner, signer_from_settings
from services.notifications.smtp_security import SmtpSecurity
from services.notifications.unsubscribe import UnsubscribeLinks
from shared.infra.dkim_key import DkimKeyError
from shared.infra.settings import Settings
from shared.runtime import ServiceRuntime, WorkerRuntime


class NotificationsRuntime(ServiceRuntime):
    def __init__(self, settings: Settings | None = None):
        super().__init__("notifications", outbox, settings, unit_of_work=NotificationsUnitOfWork)
        self.mailer = Mailer(
            self.settings.smtp_host,
            self.settings.smtp_port,
            self.settings.mail_from,
            self.settings.smtp_timeout_seconds,
            SmtpSecurity.from_settings(self.settings),
            dkim_signer(self.settings),
        )
        self.links = UnsubscribeLinks.from_settings(self.settings)
        rate = self.settings.bulk_mail_rate_per_second
        self.chunk = chunk_size(rate, self.settings.campaign_chunk_max)
        self.limiter = bulk_limiter(self.db, rate, self.settings.bulk_mail_burst, self.chunk)

    def campaign_sender(self) -> CampaignSender:
        return CampaignSender(
            uow=self.uow(),
            mailer=self.mailer,
            limiter=self.limiter,
            chunk=self.chunk,
            connections=self.settings.campaign_smtp_connections,
            lease_seconds=self.settings.campaign_claim_lease_seconds,
            links=self.links,
        )


def dkim_signer(settings: Settings) -> DkimSigner | None:
    """The DKIM signer, or a one-line refusal to start when the configured key is unusable."""
    try:
        return signer_from_settings(settings, settings.mail_from)
    except DkimKeyError as exc:
        raise SystemExit(f"doorbuster: refusing to start: DKIM key: {exc}") from None


def make_runtime(settings: Settings | None = None) -> NotificationsRuntime:
    return NotificationsRuntime(settings)


worker_runtime = WorkerRuntime(make_runtime)
