"""The inventory service's runtime: its database, outbox and the shared publisher."""

from __future__ import annotations

from services.inventory.db import outbox
from services.inventory.repository import InventoryUnitOfWork
from shared.infra.settings import Settings
from shared.runtime import ServiceRuntime, WorkerRuntime

SERVICE = "inventory"


def make_runtime(settings: Settings | None = None) -> ServiceRuntime:
    return ServiceRuntime(SERVICE, outbox, settings, unit_of_work=InventoryUnitOfWork)


worker_runtime = WorkerRuntime(make_runtime)
