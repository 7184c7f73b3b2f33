"""One API request's path: auth, injected faults, latency, idempotency, then the operation.

The order of these steps is the point of the emulator, because it decides what a
client can observe when something goes wrong:

* An injected 500 is answered before the request touches any state or the
  idempotency store. It models an infrastructure failure in front of Stripe (a
  load balancer, a dropped upstream), so nothing is saved against the
  Idempotency-Key and a retry with the same key executes normally.
* An injected timeout hangs for `hang_seconds` and then answers 504. Half of them
  (at random) hang before processing; the other half process the request and save
  its answer against the Idempotency-Key first, so the client never hears of a
  charge that happened. A retry with the same key must then get the replayed first
  response: the case that double-charges clients without idempotency keys.
* Latency is spent while holding the idempotency key, so a concurrent request
  with the same key waits for the first and replays it instead of executing twice.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from collections.abc import Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from .config import EmulatorConfig
from .errors import ApiError, api_error, idempotency_mismatch
from .forms import parse_body, parse_query
from .objects import API_VERSION
from .payments import Payments
from .state import SavedResponse, Store, fingerprint, new_id
from .webhooks import WebhookSender

log = logging.getLogger(__name__)

Operation = Callable[[dict[str, Any]], dict[str, Any]]
Outcome = tuple[int, bytes, dict[str, str]]


@dataclasses.dataclass
class Emulator:
    """Everything one emulator process holds; `config` is swapped whole at run time."""

    config: EmulatorConfig
    store: Store = dataclasses.field(init=False)
    webhooks: WebhookSender = dataclasses.field(init=False)
    payments: Payments = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        self.store = Store(lambda: self.config.idempotency_ttl_seconds)
        self.webhooks = WebhookSender(lambda: self.config)
        self.payments = Payments(
            self.store, self.webhooks.send, lambda: self.config.search_lag_seconds
        )


async def handle(emulator: Emulator, request: Request, operation: Operation) -> Response:
    """Run `operation` on the request's parameters and answer as Stripe would."""
    request_id = new_id("req")
    headers = {"Request-Id": request_id, "Stripe-Version": API_VERSION}
    try:
        _authenticate(request)
        status, body, extra = await _run(emulator, request, operation, request_id)
        headers.update(extra)
    except ApiError as exc:
        status, body = exc.status, orjson.dumps(exc.body())
    except Exception:
        # An emulator bug must still look like Stripe's api_error, or the SDK reports
        # an unparseable body and hides the real failure.
        log.exception("emulator error on %s %s", request.method, request.url.path)
        status, body = 500, orjson.dumps(api_error(500, "Emulator internal error.").body())
    if request.method == "POST":  # after the change: a snapshot taken since then is stale
        emulator.store.version += 1
    return Response(body, status, headers, media_type="application/json")


async def _run(
    emulator: Emulator, request: Request, operation: Operation, request_id: str
) -> Outcome:
    config = emulator.config
    # Reads may be spared: a charge keeps failing while a webhook's retrieve still answers.
    faulty = request.method == "POST" or not config.faults_only_on_writes
    if faulty and random.random() < config.failure_rate:
        await asyncio.sleep(config.draw_latency())
        raise api_error(500, "Injected failure: an error occurred in front of the API.")
    timeout = faulty and random.random() < config.timeout_rate
    if timeout and random.random() >= config.timeout_hides_rate:
        await _hang(config)
    params = await _params(request)
    key = request.headers.get("idempotency-key") if request.method == "POST" else None
    if key:
        outcome = await _idempotent(emulator, key, request.url.path, params, operation, request_id)
    else:
        await asyncio.sleep(config.draw_latency())
        outcome = (*_execute(operation, params), {})
    if timeout:
        await _hang(config)
    return outcome


async def _idempotent(
    emulator: Emulator,
    key: str,
    path: str,
    params: dict[str, Any],
    operation: Operation,
    request_id: str,
) -> Outcome:
    """Execute once per key; later requests with the key get the saved answer back."""
    store = emulator.store.idempotency
    saved = await store.claim(key)
    if saved is None:
        kept: SavedResponse | None = None
        try:
            await asyncio.sleep(emulator.config.draw_latency())
            status, body = _execute(operation, params)
            if _is_kept(status):
                kept = SavedResponse(
                    path, fingerprint(params), status, body, request_id, time.time()
                )
        finally:
            store.release(key, kept)
        return status, body, {"Idempotency-Key": key}
    await asyncio.sleep(emulator.config.draw_latency())
    return _replay(key, path, params, saved)


def _replay(key: str, path: str, params: dict[str, Any], saved: SavedResponse) -> Outcome:
    """The first answer again, byte for byte, unless the key is reused for something else."""
    if saved.path != path:
        raise idempotency_mismatch(key, "for the same endpoint they were first used with")
    if saved.fingerprint != fingerprint(params):
        raise idempotency_mismatch(key, "with the same parameters they were first used with")
    headers = {
        "Idempotency-Key": key,
        "Idempotent-Replayed": "true",
        "Original-Request": saved.request_id,
    }
    return saved.status, saved.body, headers


def _is_kept(status: int) -> bool:
    """Whether an answer is saved against its key.

    Stripe saves a result once the endpoint has started executing (successes, card
    declines) but not parameter validation failures, which change nothing and may be
    retried with corrected parameters under the same key.
    """
    return status < 400 or status == 402


def _execute(operation: Operation, params: dict[str, Any]) -> tuple[int, bytes]:
    try:
        return 200, orjson.dumps(operation(params))
    except ApiError as exc:
        return exc.status, orjson.dumps(exc.body())


async def _params(request: Request) -> dict[str, Any]:
    """Stripe v1 takes form bodies on POST and query strings on GET."""
    if request.method == "POST":
        return parse_body(await request.body())
    return parse_query(request.url.query)


async def _hang(config: EmulatorConfig) -> None:
    """Hold the request like a stuck upstream, then give up with a gateway timeout."""
    await asyncio.sleep(config.hang_seconds)
    raise api_error(504, f"Injected timeout: no answer within {config.hang_seconds:g} s.")


def _authenticate(request: Request) -> None:
    """Test-mode secret (or restricted) keys only, so a live key can never be used here."""
    scheme, _, api_key = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and api_key.startswith(("sk_test_", "rk_test_")):
        return
    message = (
        "You did not provide an API key. Provide it in the Authorization header "
        "(Authorization: Bearer sk_test_...)."
        if not api_key
        else f"Invalid API Key provided: {api_key[:8]}***"
    )
    raise ApiError(401, "invalid_request_error", message)
