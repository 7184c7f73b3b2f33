"""Database engines and sessions (SQLAlchemy 2 async over asyncpg).

Each service owns one PostgreSQL database; a `Database` is made in the FastAPI lifespan or in
a worker process, never at import, and disposed on shutdown.

No pre-ping: pinging on every checkout is a round trip per transaction (a task runs two or
three; about 4% of the payments pool's CPU, measured). After a database restart the first
transaction on each stale connection fails with a disconnect, SQLAlchemy then discards every
connection of that pool, and the failure is transient (`is_transient`): a request answers 503
(the client retries with its Idempotency-Key) and a task retries. The fault suite's PostgreSQL
restart proves that nothing is lost.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import asyncpg
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)


class Database:
    def __init__(self, url: str, pool_size: int = 10, max_overflow: int = 10):
        self.url = url
        self.engine: AsyncEngine = create_async_engine(
            url,
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_recycle=1800,
        )
        self.sessions: async_sessionmaker[AsyncSession] = async_sessionmaker(
            self.engine, expire_on_commit=False
        )

    @contextlib.asynccontextmanager
    async def autocommit(self) -> AsyncIterator[AsyncConnection]:
        """A connection on which PostgreSQL commits each statement by itself: one round trip
        for what would be BEGIN, the statement and COMMIT (one-statement use cases)."""
        async with self.engine.connect() as connection:
            yield await connection.execution_options(isolation_level="AUTOCOMMIT")

    async def ping(self) -> bool:
        try:
            async with self.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
            return True
        except Exception:  # noqa: BLE001 - any failure means "not ready"
            return False

    async def dispose(self) -> None:
        await self.engine.dispose()


async def create_database_if_missing(url: str) -> bool:
    """Create the database named in `url` on its server; True if it was created."""
    parsed = make_url(url)
    name = parsed.database
    if not name:
        raise ValueError(f"no database name in {parsed.render_as_string()}")
    server = parsed.set(drivername="postgresql", database="postgres")
    connection = await asyncpg.connect(server.render_as_string(hide_password=False))
    try:
        exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists:
            return False
        quoted = '"' + name.replace('"', '""') + '"'
        await connection.execute(f"CREATE DATABASE {quoted}")
        return True
    finally:
        await connection.close()


_TRANSIENT_TYPES = (
    sa_exc.TimeoutError,  # no connection free in the pool in time
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.InterfaceError,
    ConnectionError,
    TimeoutError,
    OSError,
)
# SQLSTATE classes a retry may outlive: connection exceptions (08), insufficient resources
# (53: too many connections), operator intervention (57: admin or crash shutdown, "the
# database system is shutting down" / "starting up" during a restart).
_TRANSIENT_SQLSTATE_CLASSES = ("08", "53", "57")
# Single conditions a retry outlives: the transaction lost a serialization conflict (40001) or a
# deadlock (40P01) and was rolled back whole; the server is read-only for now (25006: a primary
# demoted or a standby not yet promoted during a failover, `default_transaction_read_only`).
_TRANSIENT_SQLSTATES = ("40001", "40P01", "25006")


def is_transient(error: BaseException) -> bool:
    """A database or network failure that a retry may outlive (restart, failover, a full
    connection table), as opposed to a bug or bad data that no retry fixes.

    SQLAlchemy wraps what asyncpg raises while the server shuts down or starts up
    (`CannotConnectNowError`, `AdminShutdownError`) in a bare `DBAPIError`, neither
    operational nor invalidated, so the whole cause chain is looked at, not its top."""
    if _misconfigured(error):
        return False
    if isinstance(error, sa_exc.DBAPIError) and (
        error.connection_invalidated
        or isinstance(error, (sa_exc.OperationalError, sa_exc.InterfaceError))
    ):
        return True
    for seen in _causes(error):
        sqlstate = getattr(seen, "sqlstate", None) or getattr(seen, "pgcode", None)
        if isinstance(sqlstate, str) and (
            sqlstate[:2] in _TRANSIENT_SQLSTATE_CLASSES or sqlstate in _TRANSIENT_SQLSTATES
        ):
            return True
        if isinstance(seen, _TRANSIENT_TYPES):
            return True
    return False


def _causes(error: BaseException) -> list[BaseException]:
    """The error, what it wraps (`orig`) and what caused it, outermost first."""
    chain: list[BaseException] = []
    seen: BaseException | None = error
    while seen is not None and seen not in chain:
        chain.append(seen)
        seen = getattr(seen, "orig", None) or seen.__cause__
    return chain


# SQLSTATE classes no retry fixes: a missing database (3D) or refused credentials (28).
_PERMANENT_SQLSTATE_CLASSES = ("3D", "28")


def _misconfigured(error: BaseException) -> bool:
    for seen in _causes(error):
        sqlstate = getattr(seen, "sqlstate", None) or getattr(seen, "pgcode", None)
        if isinstance(sqlstate, str) and sqlstate[:2] in _PERMANENT_SQLSTATE_CLASSES:
            return True
    return False
