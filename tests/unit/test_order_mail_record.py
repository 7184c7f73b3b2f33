"""A sent order mail is recorded even when the database is away for a moment: the task must
not go back to the top, where its retry would send the mail a second time."""

from __future__ import annotations

import pytest

from services.notifications import handlers
from shared.contracts import SendOrderMail


class FlakySession:
    def __init__(self, failures: int):
        self.failures, self.executed = failures, 0

    async def execute(self, statement):
        if self.failures:
            self.failures -= 1
            raise ConnectionRefusedError("the database is restarting")
        self.executed += 1


class FakeUnitOfWork:
    """Records what `execute_alone` committed (a one-statement write commits by itself)."""

    def __init__(self, session: FlakySession):
        self.session, self.commits = session, 0

    async def execute_alone(self, statement, parameters=None):
        rows = await self.session.execute(statement)
        self.commits += 1
        return rows or []


MAIL = SendOrderMail(order_id="ord_1", kind="order_confirmation", to="ann@example.com", total=1234)


async def test_marking_sent_waits_out_a_database_restart():
    uow = FakeUnitOfWork(FlakySession(failures=2))
    await handlers._mark_sent(uow, MAIL)
    assert (uow.session.executed, uow.commits) == (1, 1)


async def test_a_database_that_stays_away_fails_the_task_after_the_patience(monkeypatch):
    monkeypatch.setattr(handlers, "RECORD_SENT_PATIENCE_SECONDS", 0.2)
    uow = FakeUnitOfWork(FlakySession(failures=1_000))
    with pytest.raises(ConnectionRefusedError):
        await handlers._mark_sent(uow, MAIL)
    assert uow.commits == 0


async def test_a_bug_is_not_retried():
    class Broken(FlakySession):
        async def execute(self, statement):
            self.executed += 1
            raise ValueError("a bug, not an outage")

    uow = FakeUnitOfWork(Broken(failures=0))
    with pytest.raises(ValueError):
        await handlers._mark_sent(uow, MAIL)
    assert uow.session.executed == 1
