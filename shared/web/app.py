"""The FastAPI app factory every service uses: lifespan, errors, auth, limits, probes, metrics,
load shedding, the OpenAPI document and its offline pages (/docs, /redoc). Routes get all of it
by being in `routers`, and what they need through `shared.web.deps`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from sentry_sdk.integrations import Integration

from shared.infra.metrics import OutboxLagMonitor
from shared.infra.observability import configure_logging, init_sentry
from shared.infra.settings import Settings, load_settings
from shared.runtime import ServiceRuntime
from shared.web.auth import Auth
from shared.web.docs import install_docs
from shared.web.guard import BodyLimit, RouteGuard
from shared.web.middleware import install_telemetry
from shared.web.openapi import install_openapi
from shared.web.probes import install_probes
from shared.web.problems import install_problem_handlers
from shared.web.shedding import OldestWaits, QueueDepths, waited_queues, watched_queues

log = logging.getLogger(__name__)
READINESS_TIMEOUT_SECONDS = 2.0


def create_service_app(
    service: str,
    description: str,
    make_runtime: Callable[[Settings], ServiceRuntime],
    routers: Sequence[APIRouter],
    settings: Settings | None = None,
    bulk_paths: Sequence[str] = (),
) -> FastAPI:
    settings = settings or load_settings()
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
        depths = QueueDepths(
            runtime.publisher,
            watched_queues(app),
            settings.shed_refresh_seconds,
            settings.shed_stale_seconds,
        )
        app.state.queue_depths = depths
        depths.start()
        waits = OldestWaits(
            settings.rabbitmq_management_url, settings.rabbitmq_url, waited_queues(app)
        )
        app.state.oldest_waits = waits
        waits.start()
        lag = OutboxLagMonitor(
            service,
            runtime.db,
            runtime.outbox,
            settings.outbox_lag_interval_seconds,
            runtime.dispatcher,
        )
        lag.start()
        yield
        await lag.stop()
        await waits.stop()
        await depths.stop()
        await runtime.stop()

    app = FastAPI(
        title=f"Doorbuster {service} API",
        description=description,
        version="1.0.0",
        lifespan=lifespan,
        # FastAPI's pages load Swagger UI and ReDoc from a CDN; ours serve them (shared.web.docs).
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.auth = Auth(settings)
    install_problem_handlers(app)
    # Added innermost first. The guard answers before any body is read; the telemetry,
    # outermost, sees every answer.
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.max_body_bytes,
        bulk_paths=frozenset(bulk_paths),
        bulk_bytes=settings.max_bulk_body_bytes,
    )
    app.add_middleware(RouteGuard)
    install_telemetry(app, service)

    async def readiness() -> dict[str, bool]:
        runtime: ServiceRuntime = app.state.runtime
        try:
            async with asyncio.timeout(READINESS_TIMEOUT_SECONDS):
                database = await runtime.db.ping()
        except TimeoutError:
            database = False
        return {"database": database, "broker": runtime.publisher.accepting}

    def why(check: str) -> str:
        publisher = app.state.runtime.publisher
        if check == "broker" and publisher.is_ready and publisher.is_blocked:
            # Connected, but a memory or disk alarm blocks publishing: checkout still
            # answers 202 into the outbox, which drains once the alarm clears.
            return "broker blocked (memory or disk alarm)"
        if check == "broker" and publisher.is_ready and publisher.is_silent:
            # Connected, but not a frame (not even a heartbeat) for a heartbeat interval: the
            # path drops packets. Checkout still answers 202 into the outbox.
            return f"broker silent for {publisher.silent_seconds:.0f} s (no heartbeat)"
        return f"{check} not answering"

    install_probes(app, readiness, why)
    for router in routers:
        app.include_router(router)
    install_openapi(app)
    install_docs(app)
    return app


def _sentry_integrations() -> list[Integration]:
    from sentry_sdk.integrations.fastapi import FastApiIntegration
    from sentry_sdk.integrations.starlette import StarletteIntegration

    return [StarletteIntegration(), FastApiIntegration()]
