"""The FastAPI app factory every service uses: lifespan, errors, auth, probes, metrics."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, Request
from sentry_sdk.integrations import Integration

from shared.access_log import AccessLog
from shared.config import Settings, get_settings
from shared.http import Auth, install_observability, install_probes, install_problem_handlers
from shared.metrics import OutboxLagMonitor
from shared.observability import configure_logging, init_sentry
from shared.runtime import ServiceRuntime

log = logging.getLogger(__name__)


def create_service_app(
    service: str,
    description: str,
    make_runtime: Callable[[Settings], ServiceRuntime],
    routers: Sequence[APIRouter],
    settings: Settings | None = None,
) -> FastAPI:
    settings = settings or get_settings()
    init_sentry(settings, f"{service}-api", _sentry_integrations())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(service, settings.log_level, settings.log_json)
        if settings.development_keys:
            log.warning(
                "development mode: no API keys configured, accepting `dev-storefront` and "
                "`dev-admin` (set STOREFRONT_API_KEYS and ADMIN_API_KEYS in production)"
            )
        runtime = make_runtime(settings)
        await runtime.start(relay=True)
        app.state.runtime = runtime
        lag = OutboxLagMonitor(
            service, runtime.db, runtime.outbox, settings.outbox_lag_interval_seconds
        )
        lag.start()
        yield
        await lag.stop()
        await runtime.stop()

    app = FastAPI(
        title=f"Doorbuster {service} API",
        description=description,
        version="1.0.0",
        lifespan=lifespan,
    )
    app.state.auth = Auth(settings)
    install_problem_handlers(app)
    install_observability(app, service)
    app.add_middleware(AccessLog)  # outermost: sees the correlation id the line above sets

    async def readiness() -> dict[str, bool]:
        runtime: ServiceRuntime = app.state.runtime
        return {"database": await runtime.db.ping(), "broker": runtime.publisher.is_ready}

    install_probes(app, readiness)
    for router in routers:
        app.include_router(router)
    return app


def runtime_of(request: Request) -> ServiceRuntime:
    return request.app.state.runtime


def _sentry_integrations() -> list[Integration]:
    from sentry_sdk.integrations.fastapi import FastApiIntegration
    from sentry_sdk.integrations.starlette import StarletteIntegration

    return [StarletteIntegration(), FastApiIntegration()]
