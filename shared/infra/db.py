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

import asyncio
from typing import Any

import asyncpg
import orjson
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)


class Database:
    """SQLAlchemy's engine and sessions, and, for the few statements every order runs, a pool
    of the driver's own connections (`fetch_alone`).

    Measured here (docs/benchmarks.md, "The order path this session"): one autocommit
    statement costs 0.31 ms of client CPU through SQLAlchemy, most of it its connection
    checkout and statement machinery, and 0.085-0.15 ms as a prepared asyncpg statement on a
    pool; on the order path that is a third of some pools' CPU."""

    def __init__(self, url: str, pool_size: int = 10, max_overflow: int = 10):
        self.url = url
        self._pool_size = pool_size
        self._raw: asyncpg.Pool | None = None
        self._raw_lock: asyncio.Lock | None = None
        self.engine: AsyncEngine = create_async_engine(
            url,
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_recycle=1800,
        )
        self.sessions: async_sessionmaker[AsyncSession] = async_sessionmaker(
            self.engine, expire_on_commit=False
        )

    async def fetch_alone(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        """Run one statement, committed by itself (autocommit), as a prepared asyncpg
        statement (cached per connection); `$1`-style parameters, jsonb as Python values."""
        pool = self._raw or await self._raw_pool()
        async with pool.acquire() as connection:
            try:
                return await connection.fetch(sql, *args)
            except asyncpg.InternalClientError as exc:
                # A session cut by the server mid-operation (a failover, pg_terminate_backend)
                # can leave the connection in a state asyncpg reports as its own error
                # ("cannot switch to state 12"; SQLAlchemy issue 13241): never reuse it, and
                # report the outage as what it is, transient (a 503, a task retry).
                connection.terminate()
                raise ConnectionError(f"database connection broken: {exc}") from exc

    async def _raw_pool(self) -> asyncpg.Pool:
        if self._raw_lock is None:
            self._raw_lock = asyncio.Lock()
        async with self._raw_lock:
            if self._raw is None:
                dsn = make_url(self.url).set(drivername="postgresql")
                self._raw = await asyncpg.create_pool(
                    dsn.render_as_string(hide_password=False),
                    min_size=1,
                    max_size=self._pool_size,
                    init=_json_codecs,
                    # Single autocommit statements leave no session state behind: no
                    # RESET ALL round trip on every release.
                    reset=_nothing_to_reset,
                    max_inactive_connection_lifetime=1800,
                )
        return self._raw

    async def ping(self) -> bool:
        try:
            async with self.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
            return True
        except Exception:  # noqa: BLE001 - any failure means "not ready"
            return False

    async def dispose(self) -> None:
        if self._raw is not None:
            await self._raw.close()
            self._raw = None
        await self.engine.dispose()


async def _json_codecs(connection: asyncpg.Connection) -> None:
    for kind in ("json", "jsonb"):
        await connection.set_type_codec(
            kind,
            encoder=lambda value: orjson.dumps(value).decode(),
            decoder=orjson.loads,
            schema="pg_catalog",
        )


async def _nothing_to_reset(connection: asyncpg.Connection) -> None:
    return None


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
