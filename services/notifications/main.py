"""The notifications API: transactional mail and campaigns (port 8003)."""

from __future__ import annotations

from fastapi import FastAPI

from services.notifications.api import router
from services.notifications.campaign_api import (
    campaign_router,
    subscriber_router,
    unsubscribe_router,
)
from services.notifications.list_api import list_router
from services.notifications.runtime import make_runtime
from shared.web.app import create_service_app


def create_app() -> FastAPI:
    return create_service_app(
        "notifications",
        "Transactional mail (one per order and kind) and bulk campaigns.",
        make_runtime,
        [router, subscriber_router, list_router, campaign_router, unsubscribe_router],
        # The subscriber import takes up to 10,000 addresses: larger than the default limit.
        bulk_paths=["/v1/subscribers"],
    )
