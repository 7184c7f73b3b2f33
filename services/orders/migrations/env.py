"""Alembic environment of the orders service (its own database)."""

from services.orders.db import metadata
from shared.infra.migrate import run_env

run_env(metadata)
