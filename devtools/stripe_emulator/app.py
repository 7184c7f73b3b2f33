"""The emulator's HTTP surface: Stripe's `/v1` subset plus `/_emulator` controls.

Routes stay thin: each names one `Payments` operation and hands it to the request
pipeline, which owns auth, fault injection, latency and idempotency. Routes take
the raw `Request` (no FastAPI body models) because Stripe bodies are nested forms
and because validation errors must come back in Stripe's shape, not FastAPI's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from .config import EmulatorConfig
from .errors import ApiError, invalid
from .pipeline import Emulator, handle
from .snapshots import Snapshots

api = APIRouter(tags=["stripe"])
control = APIRouter(prefix="/_emulator", tags=["emulator"])


def create_app(config: EmulatorConfig | None = None, state_file: Path | None = None) -> FastAPI:
    """Build an emulator app, its state fresh or kept in `state_file` across restarts;
    settings default to the environment."""
    emulator = Emulator(config or EmulatorConfig.from_env())
    snapshots = Snapshots(emulator.store, state_file) if state_file else None

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if snapshots:
            snapshots.restore()
            snapshots.start()
        yield
        await emulator.webhooks.aclose()
        if snapshots:
            await snapshots.stop()

    app = FastAPI(
        title="Doorbuster Stripe emulator",
        description="The subset of the Stripe API Doorbuster uses; local and test only.",
        lifespan=lifespan,
    )
    app.state.emulator = emulator
    app.include_router(control)
    app.include_router(api)
    return app


def _emulator(request: Request) -> Emulator:
    return request.app.state.emulator


@api.post("/v1/payment_intents")
async def create_payment_intent(request: Request) -> Response:
    """Create a PaymentIntent; with `confirm=true` it is charged at once."""
    emulator = _emulator(request)
    return await handle(emulator, request, emulator.payments.create_intent)


@api.get("/v1/payment_intents")
async def list_payment_intents(request: Request) -> Response:
    """PaymentIntents newest first, paged by `limit`, `starting_after`, `ending_before`."""
    emulator = _emulator(request)
    return await handle(emulator, request, emulator.payments.list_intents)


@api.get("/v1/payment_intents/search")
async def search_payment_intents(request: Request) -> Response:
    """Search PaymentIntents by `query` (Stripe's search result; eventually consistent)."""
    emulator = _emulator(request)
    return await handle(emulator, request, emulator.payments.search_intents)


@api.get("/v1/payment_intents/{intent_id}")
async def get_payment_intent(request: Request, intent_id: str) -> Response:
    """One PaymentIntent (404 `resource_missing` if unknown)."""
    emulator = _emulator(request)
    return await handle(emulator, request, lambda _: emulator.payments.get_intent(intent_id))


@api.post("/v1/payment_intents/{intent_id}/confirm")
async def confirm_payment_intent(request: Request, intent_id: str) -> Response:
    """Confirm a PaymentIntent, optionally with a new `payment_method`."""
    emulator = _emulator(request)
    confirm = emulator.payments.confirm_intent
    return await handle(emulator, request, lambda params: confirm(intent_id, params))


@api.post("/v1/refunds")
async def create_refund(request: Request) -> Response:
    """Refund a succeeded PaymentIntent, fully or by `amount`."""
    emulator = _emulator(request)
    return await handle(emulator, request, emulator.payments.create_refund)


@api.get("/v1/refunds")
async def list_refunds(request: Request) -> Response:
    """Refunds newest first, optionally only those of one `payment_intent`."""
    emulator = _emulator(request)
    return await handle(emulator, request, emulator.payments.list_refunds)


@api.get("/v1/refunds/{refund_id}")
async def get_refund(request: Request, refund_id: str) -> Response:
    """One refund (404 `resource_missing` if unknown)."""
    emulator = _emulator(request)
    return await handle(emulator, request, lambda _: emulator.payments.get_refund(refund_id))


@api.get("/v1/events")
async def list_events(request: Request) -> Response:
    """Events newest first, optionally of one `type`."""
    emulator = _emulator(request)
    return await handle(emulator, request, emulator.payments.list_events)


@api.get("/v1/events/{event_id}")
async def get_event(request: Request, event_id: str) -> Response:
    """One event, as it was delivered (the intent snapshot at the time)."""
    emulator = _emulator(request)
    return await handle(emulator, request, lambda _: emulator.payments.get_event(event_id))


@api.api_route("/v1/{rest:path}", methods=["GET", "POST", "DELETE"], include_in_schema=False)
async def unknown_route(request: Request, rest: str) -> Response:
    """Stripe's answer to a URL it does not serve, so the SDK raises a readable error."""

    def fail(_: dict[str, Any]) -> dict[str, Any]:
        raise ApiError(
            404,
            "invalid_request_error",
            f"Unrecognized request URL ({request.method}: /v1/{rest}). "
            "This emulator serves only the subset Doorbuster uses.",
        )

    return await handle(_emulator(request), request, fail)


@control.get("/healthz")
async def healthz(request: Request) -> dict[str, Any]:
    """Liveness, with a few counters that help when debugging a test run."""
    emulator = _emulator(request)
    return {
        "status": "ok",
        "payment_intents": len(emulator.store.payment_intents),
        "events": len(emulator.store.events),
        "webhooks_delivered": emulator.webhooks.delivered,
        "webhooks_abandoned": emulator.webhooks.abandoned,
    }


@control.get("/config")
async def get_config(request: Request) -> dict[str, Any]:
    """The current latency, fault rates and webhook URL."""
    return _emulator(request).config.public()


@control.post("/config")
async def set_config(request: Request) -> Response:
    """Change any of latency_ms, failure_rate, timeout_rate, timeout_hides_rate, hang_seconds,
    webhook_url, faults_only_on_writes, idempotency_ttl_seconds, search_lag_seconds."""
    emulator = _emulator(request)
    try:
        changes = await request.json()
        if not isinstance(changes, dict):
            raise ValueError("expected a JSON object")
        emulator.config = emulator.config.updated(changes)
    except (ValueError, TypeError) as exc:
        return JSONResponse(invalid(str(exc)).body(), status_code=400)
    return JSONResponse(emulator.config.public())


@control.post("/reset")
async def reset(request: Request) -> dict[str, bool]:
    """Forget every object, event and idempotency key (settings are kept)."""
    _emulator(request).store.reset()
    return {"reset": True}


@control.post("/events/{event_id}/resend")
async def resend_event(request: Request, event_id: str) -> Response:
    """Deliver a recorded event again, `times` times (default 1), as it was first sent: what
    Stripe does after a lost 2xx, and, resending an older event after a newer one, events
    that arrive out of order. Body (optional): `{"times": n}`, 1..10."""
    emulator = _emulator(request)
    event = emulator.store.events.get(event_id)
    if event is None:
        return JSONResponse(invalid(f"No such event: '{event_id}'").body(), status_code=404)
    body = await request.json() if await request.body() else {}
    times = body.get("times", 1) if isinstance(body, dict) else None
    if not isinstance(times, int) or not 1 <= times <= 10:
        return JSONResponse(invalid("times must be an integer 1..10").body(), status_code=400)
    for _ in range(times):
        emulator.webhooks.send(event)
    return JSONResponse({"resent": times, "event": event_id})
