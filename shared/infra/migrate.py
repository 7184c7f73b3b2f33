"""Create each service's database if missing and bring it to its newest Alembic revision.

`python -m shared.infra.migrate [service ...]` (what `make up` and the tests run). Each service
keeps its own migrations in `services/<name>/migrations/`; their `env.py` calls `run_env` below.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from shared.infra.db import create_database_if_missing
from shared.infra.settings import SERVICES, DatabaseSettings, load_settings

SERVICES_DIR = Path(__file__).resolve().parents[2] / "services"


def alembic_config(service: str, url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SERVICES_DIR / service / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def migrate(service: str, settings: DatabaseSettings) -> None:
    url = settings.service_database_url(service)
    created = asyncio.run(create_database_if_missing(url))
    if created:
        print(f"created database for {service}")
    command.upgrade(alembic_config(service, url), "head")


def run_env(metadata: MetaData) -> None:
    """The body of every service's `migrations/env.py` (online, async engine)."""
    url = context.config.get_main_option("sqlalchemy.url")

    def run(connection: Connection) -> None:
        context.configure(connection=connection, target_metadata=metadata, compare_type=True)
        with context.begin_transaction():
            context.run_migrations()

    async def run_async() -> None:
        engine = create_async_engine(url, poolclass=pool.NullPool)
        async with engine.connect() as connection:
            await connection.run_sync(run)
        await engine.dispose()

    if context.is_offline_mode():
        context.configure(url=url, target_metadata=metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
    else:
        asyncio.run(run_async())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("services", nargs="*", help=f"default: all of {', '.join(SERVICES)}")
    args = parser.parse_args()
    unknown = set(args.services) - set(SERVICES)
    if unknown:
        parser.error(f"unknown service(s): {', '.join(sorted(unknown))}")
    settings = load_settings()
    for service in args.services or SERVICES:
        migrate(service, settings)


if __name__ == "__main__":
    main()
