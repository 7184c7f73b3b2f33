"""Which failures the task shell retries as infrastructure, and which follow the task's policy."""

from __future__ import annotations

from types import SimpleNamespace

from services.notifications.mailer import MailDeliveryError
from services.orders.payments import TransientPaymentError
from services.orders.tasks import payment_retry
from shared.infra.settings import Settings
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


def test_the_payment_retry_budget_comes_from_the_environment(monkeypatch):
    """Defaults: 8 retries, 1 s doubling to 30 s with jitter; an operator (or a test that
    outlasts the budget) sets it with PAYMENT_* variables, read once per process."""
    assert payment_retry(Settings()) == {
        "autoretry_for": (TransientPaymentError,),
        "retry_backoff": 1,
        "retry_backoff_max": 30,
        "retry_jitter": True,
        "max_retries": 8,
    }
    for name, value in {
        "PAYMENT_MAX_RETRIES": "3",
        "PAYMENT_RETRY_BACKOFF_SECONDS": "2",
        "PAYMENT_RETRY_BACKOFF_MAX_SECONDS": "4",
        "PAYMENT_RETRY_JITTER": "false",
    }.items():
        monkeypatch.setenv(name, value)
    policy = payment_retry(Settings())
    assert (policy["max_retries"], policy["retry_backoff"], policy["retry_backoff_max"]) == (
        3,
        2,
        4,
    )
    assert policy["retry_jitter"] is False
