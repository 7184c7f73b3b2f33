"""The bulk pool's rate limit: one token bucket in PostgreSQL, shared by every process.

Arithmetic (`take`, pure): the bucket refills at `rate` tokens a second up to `burst`; a take
of `n` always succeeds and may leave the bucket negative, a debt, and the taker then waits
`debt / rate` seconds before sending. Concurrent takers queue up behind each other's debt, so
over any window of T seconds the pool sends at most `burst + rate * T` mails, however many
processes and threads take. A negative `n` gives unused tokens back.

Storage (`PostgresTokenBucket`): the bucket is one row, and a take is one `UPDATE ...
RETURNING` in autocommit that does `take`'s arithmetic in SQL (the row lock orders concurrent
takers), with PostgreSQL's clock as the only clock (workers on several hosts need not agree on
time). One round trip per chunk of ~50 mails, where a transaction reading the row `FOR
UPDATE` and writing it back took four (BEGIN, SELECT, UPDATE, COMMIT). Redis would do the
same with a Lua script; PostgreSQL is already a dependency of the pool and needs no new part.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text

from shared.infra.db import Database


@dataclass(frozen=True)
class Bucket:
    tokens: float
    at: float  # when `tokens` was computed (seconds)


def take(bucket: Bucket, n: float, now: float, rate: float, burst: float) -> tuple[Bucket, float]:
    """Refill for the time elapsed, take `n`; returns the new bucket and the seconds to wait."""
    elapsed = max(0.0, now - bucket.at)
    refilled = min(burst, bucket.tokens + elapsed * rate)
    left = min(burst, refilled - n)
    wait = max(0.0, -left / rate)
    return Bucket(left, max(now, bucket.at)), wait


class RateLimiter:
    """What the batch sender needs: take tokens (and wait), give unused ones back."""

    async def acquire(self, n: int) -> float:
        """Take `n` tokens; returns the seconds the caller must wait before using them."""
        return 0.0

    async def give_back(self, n: int) -> None:
        return None


class Unlimited(RateLimiter):
    """Rate 0: no limit, no database round trips."""


class PostgresTokenBucket(RateLimiter):
    def __init__(self, db: Database, name: str, rate: float, burst: float):
        if rate <= 0 or burst <= 0:
            raise ValueError("rate and burst must be positive")
        self._db, self.name, self.rate, self.burst = db, name, rate, burst

    async def acquire(self, n: int) -> float:
        return await self._take(float(n))

    async def give_back(self, n: int) -> None:
        if n > 0:
            await self._take(-float(n))

    async def _take(self, n: float) -> float:
        params = {"name": self.name, "n": n, "rate": self.rate, "burst": self.burst}
        async with self._db.engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            left = await autocommit.scalar(_TAKE, params)
            if left is None:  # first use: a full bucket, then take
                await autocommit.execute(_CREATE, params)
                left = await autocommit.scalar(_TAKE, params)
        assert left is not None
        return max(0.0, -left / self.rate)


# `take` in one statement; `clock_timestamp()` read once (a CTE), so `at` and the refill agree.
_TAKE = text(
    """
    WITH clock AS (SELECT extract(epoch FROM clock_timestamp())::float8 AS now)
    UPDATE rate_buckets SET
        tokens = least(:burst, least(:burst, tokens + greatest(0, clock.now - at) * :rate) - :n),
        at = greatest(clock.now, at)
    FROM clock
    WHERE name = :name
    RETURNING tokens
    """
)
_CREATE = text(
    """
    INSERT INTO rate_buckets (name, tokens, at)
    VALUES (:name, :burst, extract(epoch FROM clock_timestamp()))
    ON CONFLICT (name) DO NOTHING
    """
)


def bulk_limiter(db: Database, rate: float, burst: float | None, chunk: int) -> RateLimiter:
    """The limiter the bulk pool's settings ask for (rate 0: none; default burst: a chunk)."""
    if rate <= 0:
        return Unlimited()
    return PostgresTokenBucket(db, "bulk-smtp", rate, burst or float(chunk))
