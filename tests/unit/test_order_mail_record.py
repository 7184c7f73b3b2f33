"""A sent order mail is recorded even when the database is away for a moment: the task must
not go back to the top, where its retry would send the mail a second time."""

from __future__ import annotations

import pytest

from services.notifications import handlers
from shared.messages.orders import SendOrderMail
from tests.unit.fakes.notifications import FakeNotificationsWork

MAIL = SendOrderMail(order_id="ord_1", kind="order_confirmation", to="ann@example.com", total=1234)


@pytest.fixture
async def uow() -> FakeNotificationsWork:
    work = FakeNotificationsWork()
    assert await work.mail.claim_first(MAIL)
    return work


def status(uow: FakeNotificationsWork) -> str:
    return uow.mail.rows[(MAIL.order_id, MAIL.kind)]["status"]


async def test_marking_sent_waits_out_a_database_restart(uow):
    uow.mail.outage = 2
    await handlers._mark_sent(uow, MAIL)
    assert status(uow) == "sent" and uow.mail.outage == 0


async def test_a_database_that_stays_away_fails_the_task_after_the_patience(uow, monkeypatch):
    monkeypatch.setattr(handlers, "RECORD_SENT_PATIENCE_SECONDS", 0.2)
    uow.mail.outage = 1_000
    with pytest.raises(ConnectionRefusedError):
        await handlers._mark_sent(uow, MAIL)
    assert status(uow) == "sending"


async def test_a_bug_is_not_retried(uow, monkeypatch):
    calls = []

    async def broken(mail, status, last_error=None):
        calls.append(status)
        raise ValueError("a bug, not an outage")

    monkeypatch.setattr(uow.mail, "record_alone", broken)
    with pytest.raises(ValueError):
        await handlers._mark_sent(uow, MAIL)
    assert len(calls) == 1
