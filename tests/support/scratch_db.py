"""A database of its own for a test of the infrastructure: created with `metadata`'s tables,
dropped afterwards (on the machine's PostgreSQL, named after the test slot's prefix)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import asyncpg
from sqlalchemy import MetaData

from devtools.harness.stack import DB_PREFIX, PG_SERVER
from shared.infra.db import Database, create_database_if_missing


@contextlib.asynccontextmanager
async def scratch_database(suffix: str, metadata: MetaData) -> AsyncIterator[Database]:
    name = f"{DB_PREFIX}_{suffix}"
    url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    await create_database_if_missing(url)
    db = Database(url, pool_size=2)
    async with db.engine.begin() as connection:
        await connection.run_sync(metadata.drop_all)
        await connection.run_sync(metadata.create_all)
    try:
        yield db
    finally:
        await db.dispose()
        connection = await asyncpg.connect(f"{PG_SERVER}/postgres")
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.close()
