"""The bulk pool's token bucket on a real PostgreSQL: takers on separate connections (as the
pool's processes are) share one rate, and a take costs about a millisecond."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest

from devtools.harness.stack import DB_PREFIX, PG_SERVER
from services.notifications.db import rate_buckets
from services.notifications.ratelimit import PostgresTokenBucket
from shared.infra.db import Database, create_database_if_missing

URL = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{DB_PREFIX}_ratelimit"
RATE, CHUNK, SECONDS, TAKERS = 200.0, 10, 3.0, 3


@pytest.fixture
async def databases() -> AsyncIterator[list[Database]]:
    await create_database_if_missing(URL)
    databases = [Database(URL, pool_size=1, max_overflow=0) for _ in range(TAKERS)]
    async with databases[0].engine.begin() as connection:
        await connection.run_sync(rate_buckets.drop, checkfirst=True)
        await connection.run_sync(rate_buckets.create)
    yield databases
    for database in databases:
        await database.dispose()
    connection = await asyncpg.connect(f"{PG_SERVER}/postgres")
    await connection.execute(f'DROP DATABASE IF EXISTS "{DB_PREFIX}_ratelimit" WITH (FORCE)')
    await connection.close()


async def send_for(bucket: PostgresTokenBucket, until: float, sends: list[float]) -> list[float]:
    """Take a chunk, wait as told, 'send' it; returns how long each take took."""
    costs = []
    while time.monotonic() < until:
        started = time.monotonic()
        wait = await bucket.acquire(CHUNK)
        costs.append(time.monotonic() - started)
        await asyncio.sleep(wait)
        sends.extend([time.monotonic()] * CHUNK)
    return costs


async def test_takers_on_separate_connections_share_one_rate(databases: list[Database]):
    buckets = [PostgresTokenBucket(db, "test-bulk", RATE, burst=CHUNK) for db in databases]
    sends: list[float] = []
    started = time.monotonic()
    costs = await asyncio.gather(*(send_for(b, started + SECONDS, sends) for b in buckets))
    elapsed = max(sends) - started
    achieved = len(sends) / elapsed
    take_ms = sorted(c for per_taker in costs for c in per_taker)[len(sends) // CHUNK // 2] * 1000
    print(
        f"\n{TAKERS} takers, rate {RATE:.0f}/s: {len(sends)} sends in {elapsed:.2f} s = "
        f"{achieved:.0f}/s; median take {take_ms:.1f} ms"
    )
    assert len(sends) <= CHUNK + RATE * elapsed + CHUNK * TAKERS  # the last takes may end late
    assert achieved >= 0.85 * RATE
    for window_start in sends[:: CHUNK * 10]:
        in_one_second = sum(1 for at in sends if window_start <= at < window_start + 1)
        assert in_one_second <= CHUNK + RATE + CHUNK  # burst + rate; one chunk of timer jitter


async def test_unused_tokens_go_back(databases: list[Database]):
    bucket = PostgresTokenBucket(databases[0], "test-give-back", RATE, burst=50)
    assert await bucket.acquire(50) == 0.0
    await bucket.give_back(50)
    assert await bucket.acquire(50) == 0.0  # without the refund this would wait 0.25 s


async def test_a_take_in_sql_does_the_arithmetic_of_take(databases: list[Database]):
    """A rested bucket gives `burst` at once; the next take is a debt of `n / rate` seconds
    (less the few milliseconds refilled in between); tokens given back cancel it."""
    bucket = PostgresTokenBucket(databases[0], "test-arith", RATE, burst=CHUNK)
    assert await bucket.acquire(CHUNK) == 0.0
    debt = await bucket.acquire(CHUNK)
    assert CHUNK / RATE - 0.03 < debt <= CHUNK / RATE
    await bucket.give_back(2 * CHUNK)
    assert await bucket.acquire(CHUNK) == 0.0
