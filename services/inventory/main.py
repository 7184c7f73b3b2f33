"""The inventory API: catalog, stock and reservations (port 8002)."""

from __future__ import annotations

from fastapi import FastAPI

from services.inventory.api import router
from services.inventory.runtime import make_runtime
from shared.web.app import create_service_app


def create_app() -> FastAPI:
    return create_service_app(
        "inventory",
        "Catalog and stock. `available = stock - reserved`, never negative; no oversell.",
        make_runtime,
        [router],
    )
