"""Which failures the task shell retries as infrastructure, and which follow the task's policy."""

from __future__ import annotations

from types import SimpleNamespace

from services.notifications.mailer import MailDeliveryError
from shared.messaging.tasks import infrastructure_failure


def smtp_refused() -> MailDeliveryError:
    try:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except ConnectionRefusedError as cause:
            raise MailDeliveryError("SMTP server refused the connection") from cause
    except MailDeliveryError as error:
        return error


def test_an_error_the_task_retries_itself_follows_its_policy():
    mail_task = SimpleNamespace(autoretry_for=(MailDeliveryError,))
    assert not infrastructure_failure(mail_task, smtp_refused())


def test_the_same_network_error_elsewhere_is_infrastructure():
    other_task = SimpleNamespace(autoretry_for=())
    assert infrastructure_failure(other_task, smtp_refused())
    assert infrastructure_failure(SimpleNamespace(), ConnectionResetError())


def test_a_bug_is_never_retried_as_infrastructure():
    assert not infrastructure_failure(SimpleNamespace(autoretry_for=()), KeyError("total"))
