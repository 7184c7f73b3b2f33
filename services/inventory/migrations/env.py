"""Alembic environment of the inventory service (its own database)."""

from services.inventory.db import metadata
from shared.infra.migrate import run_env

run_env(metadata)
