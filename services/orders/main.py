"""The orders API: checkout and order state (port 8001)."""

from __future__ import annotations

from fastapi import FastAPI

from services.orders.api import router, webhook_router
from services.orders.runtime import make_runtime
from shared.web.app import create_service_app


def create_app() -> FastAPI:
    return create_service_app(
        "orders",
        "Checkout and order state. `POST /v1/orders` answers 202; the order then moves "
        "`pending -> reserved -> paid` (or a final failure) asynchronously.",
        make_runtime,
        [router, webhook_router],
    )
