"""The notifications service's runtime: database, outbox, publisher and the mailer."""

from __future__ import annotations

from services.notifications.db import outbox
from services.notifications.mailer import Mailer
from shared.config import Settings
from shared.runtime import ServiceRuntime, WorkerRuntime


class NotificationsRuntime(ServiceRuntime):
    def __init__(self, settings: Settings | None = None):
        super().__init__("notifications", outbox, settings)
        self.mailer = Mailer(
            self.settings.smtp_host, self.settings.smtp_port, self.settings.mail_from
        )


def make_runtime(settings: Settings | None = None) -> NotificationsRuntime:
    return NotificationsRuntime(settings)


worker_runtime = WorkerRuntime(make_runtime)
