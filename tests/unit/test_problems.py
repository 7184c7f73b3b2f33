"""Which exceptions become which problem: an unreachable database is 503, a bug is 500."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy import exc as sa_exc

from shared.web.problems import classify, database_unavailable


def wrapped(error: Exception) -> sa_exc.DBAPIError:
    return sa_exc.DBAPIError("SELECT 1", {}, error)


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(111, "refused"),
        TimeoutError(),
        sa_exc.OperationalError("SELECT 1", {}, Exception("server closed the connection")),
        sa_exc.TimeoutError("QueuePool limit reached"),
        wrapped(asyncpg.CannotConnectNowError("the database system is shutting down")),
        wrapped(asyncpg.ConnectionDoesNotExistError("connection was closed")),
        wrapped(asyncpg.TooManyConnectionsError("too many clients")),
    ],
    ids=lambda error: type(error).__name__,
)
def test_an_unreachable_database_is_503_with_retry_after(error):
    assert database_unavailable(error)
    response = classify(error)
    assert response.status_code == 503 and response.headers["retry-after"]
    assert response.media_type == "application/problem+json"


def test_an_invalidated_connection_is_503():
    error = sa_exc.DBAPIError("SELECT 1", {}, Exception("gone"), connection_invalidated=True)
    assert classify(error).status_code == 503


def test_text_postgresql_cannot_store_is_422():
    error = wrapped(asyncpg.CharacterNotInRepertoireError("invalid byte sequence 0x00"))
    assert classify(error).status_code == 422


@pytest.mark.parametrize(
    "error",
    [KeyError("x"), ZeroDivisionError(), wrapped(asyncpg.UniqueViolationError("duplicate key"))],
    ids=lambda error: type(error).__name__,
)
def test_anything_else_is_a_500_without_details(error):
    response = classify(error)
    assert response.status_code == 500
    assert b"duplicate" not in response.body and b"KeyError" not in response.body
