"""Which database errors a task retries (and an API answers 503): a server restarting or
shutting down is transient, bad data and a misconfiguration are not."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy import exc as sa_exc

from shared.infra.db import is_transient
from shared.web.problems import classify


def wrapped(error: Exception) -> sa_exc.DBAPIError:
    """As SQLAlchemy's asyncpg dialect raises it: a bare DBAPIError around an adapter error
    whose cause is asyncpg's exception."""
    adapted = Exception(str(error))
    adapted.__cause__ = error
    return sa_exc.DBAPIError("SELECT 1", {}, adapted)


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.CannotConnectNowError("the database system is shutting down"),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.TooManyConnectionsError("sorry, too many clients already"),
        asyncpg.ReadOnlySQLTransactionError("cannot execute INSERT in a read-only transaction"),
        asyncpg.SerializationError("could not serialize access due to concurrent update"),
        asyncpg.DeadlockDetectedError("deadlock detected"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_a_restarting_server_is_transient_for_tasks_and_503_for_requests(error):
    assert is_transient(wrapped(error))
    assert classify(wrapped(error)).status_code == 503


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.UniqueViolationError("duplicate key"),
        asyncpg.InvalidCatalogNameError('database "x" does not exist'),
        asyncpg.InvalidPasswordError("password authentication failed"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_bad_data_or_configuration_is_not_transient(error):
    assert not is_transient(wrapped(error))
