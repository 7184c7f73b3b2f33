"""Alembic environment of the notifications service (its own database)."""

from services.notifications.db import metadata
from shared.infra.migrate import run_env

run_env(metadata)
