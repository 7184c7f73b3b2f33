"""The bulk pool's rate limit: one token bucket in PostgreSQL, shared by every process.

Arithmetic (`take`, pure): the bucket refills at `rate` tokens a second up to `burst`; a take
of `n` always succeeds and may leave the bucket negative, a debt, and the taker then waits
`debt / rate` seconds before sending. Concurrent takers queue up behind each other's debt, so
over any window of T seconds the pool sends at most `burst + rate * T` mails, however many
processes and threads take. A negative `n` gives unused tokens back.

Storage (`PostgresTokenBucket`): the bucket is one row, read `FOR UPDATE` and written back in
one short transaction, with PostgreSQL's clock as the only clock (workers on several hosts
need not agree on time). Taking tokens for a chunk of ~50 mails costs one transaction, so the
limiter adds a few round trips per chunk, not per mail. Redis would do the same with a Lua
script; PostgreSQL is already a dependency of the pool and needs no new moving part.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.notifications.db import rate_buckets
from shared.db import Database

_NOW = func.extract("epoch", func.clock_timestamp())


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
        async with self._db.sessions.begin() as session:
            row = await self._locked(session)
            if row is None:  # first use: a full bucket
                await session.execute(
                    insert(rate_buckets)
                    .values(name=self.name, tokens=self.burst, at=_NOW)
                    .on_conflict_do_nothing()
                )
                row = await self._locked(session)
            assert row is not None
            bucket, wait = take(
                Bucket(row.tokens, row.at), n, float(row.now), self.rate, self.burst
            )
            await session.execute(
                update(rate_buckets)
                .where(rate_buckets.c.name == self.name)
                .values(tokens=bucket.tokens, at=bucket.at)
            )
        return wait

    async def _locked(self, session: AsyncSession) -> Row[Any] | None:
        query = (
            select(rate_buckets.c.tokens, rate_buckets.c.at, _NOW.label("now"))
            .where(rate_buckets.c.name == self.name)
            .with_for_update()
        )
        return (await session.execute(query)).first()


def bulk_limiter(db: Database, rate: float, burst: float | None, chunk: int) -> RateLimiter:
    """The limiter the bulk pool's settings ask for (rate 0: none; default burst: a chunk)."""
    if rate <= 0:
        return Unlimited()
    return PostgresTokenBucket(db, "bulk-smtp", rate, burst or float(chunk))
