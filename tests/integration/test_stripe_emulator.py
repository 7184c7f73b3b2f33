"""The Stripe emulator, run as its own process and driven through the official SDK.

Only `stripe.StripeClient` (and module-level `stripe.api_base`) talk to `/v1`, so these
tests pin down what the SDK sees: its exception classes, replay headers, paging.
httpx is used for the `/_emulator` controls and a few raw checks.
"""

from __future__ import annotations

import asyncio
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import stripe

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "sk_test_doorbuster"
WEBHOOK_SECRET = "whsec_doorbuster_dev"
DEFAULT_CONFIG = {
    "latency_ms": 0,
    "failure_rate": 0,
    "timeout_rate": 0,
    "timeout_hides_rate": 0.5,
    "hang_seconds": 20,
    "webhook_url": None,
    "faults_only_on_writes": False,
    "idempotency_ttl_seconds": 86400,
    "search_lag_seconds": 0,
}
VISA = {"amount": 2500, "currency": "usd", "payment_method": "pm_card_visa", "confirm": True}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_emulator(
    port: int, timeout: float = 15.0, state_file: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start `python -m devtools.stripe_emulator` and wait until it answers healthz."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRIPE_EMULATOR_")}
    env.pop("STRIPE_WEBHOOK_SECRET", None)
    keep = ["--state-file", str(state_file)] if state_file else []
    process = subprocess.Popen(
        [sys.executable, "-m", "devtools.stripe_emulator", "--port", str(port), *keep],
        cwd=ROOT,
        env=env,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"emulator exited with {process.returncode}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/_emulator/healthz", timeout=1).raise_for_status()
            return process
        except httpx.HTTPError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("emulator did not become healthy")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def emulator_url() -> Iterator[str]:
    port = free_port()
    process = start_emulator(port)
    yield f"http://127.0.0.1:{port}"
    stop(process)


@pytest.fixture
def control(emulator_url: str) -> Iterator[httpx.Client]:
    """Client for `/_emulator`; every test starts from empty state and no faults."""
    with httpx.Client(base_url=emulator_url, timeout=10) as http:
        http.post("/_emulator/reset").raise_for_status()
        http.post("/_emulator/config", json=DEFAULT_CONFIG).raise_for_status()
        yield http


@pytest.fixture
def client(emulator_url: str, control: httpx.Client) -> stripe.StripeClient:
    """The SDK as services use it, without retries so each call is one request."""
    return stripe.StripeClient(
        API_KEY,
        base_addresses={"api": emulator_url},
        http_client=stripe.HTTPXClient(allow_sync_methods=True),
        max_network_retries=0,
    )


def configure(control: httpx.Client, **settings: object) -> None:
    control.post("/_emulator/config", json=settings).raise_for_status()


def test_confirmed_visa_payment_succeeds(client: stripe.StripeClient) -> None:
    intent = client.v1.payment_intents.create(params={**VISA, "metadata": {"order_id": "o-1"}})
    assert intent.status == "succeeded"
    assert intent.amount_received == 2500
    assert intent.latest_charge.startswith("ch_")
    assert intent.metadata["order_id"] == "o-1"


async def test_async_create_confirm_retrieve(client: stripe.StripeClient) -> None:
    params = {"amount": 900, "currency": "usd", "payment_method": "pm_card_mastercard"}
    intent = await client.v1.payment_intents.create_async(params=params)
    assert intent.status == "requires_confirmation"
    confirmed = await client.v1.payment_intents.confirm_async(intent.id)
    assert confirmed.status == "succeeded"
    fetched = await client.v1.payment_intents.retrieve_async(intent.id)
    assert fetched.status == "succeeded"


@pytest.mark.parametrize("card", ["pm_card_visa_chargeDeclined", "pm_card_chargeDeclined"])
def test_decline_raises_card_error_carrying_the_intent(
    client: stripe.StripeClient, card: str
) -> None:
    with pytest.raises(stripe.CardError) as info:
        client.v1.payment_intents.create(params={**VISA, "payment_method": card})
    error = info.value
    assert (error.http_status, error.code) == (402, "card_declined")
    assert error.error.decline_code == "generic_decline"
    intent = error.error.payment_intent
    assert intent.status == "requires_payment_method"
    assert intent.last_payment_error.code == "card_declined"
    assert client.v1.payment_intents.retrieve(intent.id).status == "requires_payment_method"


def test_bad_parameters_are_invalid_requests(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        client.v1.payment_intents.create(params={**VISA, "payment_method": "pm_nope"})
    assert (unknown.value.code, unknown.value.param) == ("resource_missing", "payment_method")
    with pytest.raises(stripe.InvalidRequestError) as no_amount:
        client.v1.payment_intents.create(params={"currency": "usd"})
    assert (no_amount.value.code, no_amount.value.param) == ("parameter_missing", "amount")
    with pytest.raises(stripe.InvalidRequestError) as missing_intent:
        client.v1.payment_intents.retrieve("pi_missing")
    assert (missing_intent.value.http_status, missing_intent.value.code) == (
        404,
        "resource_missing",
    )


def test_same_key_replays_the_first_intent(client: stripe.StripeClient) -> None:
    first = client.v1.payment_intents.create(params=VISA, options={"idempotency_key": "order-1"})
    again = client.v1.payment_intents.create(params=VISA, options={"idempotency_key": "order-1"})
    assert again.id == first.id
    assert again.last_response.headers["Idempotent-Replayed"] == "true"
    other = client.v1.payment_intents.create(params=VISA, options={"idempotency_key": "order-2"})
    assert other.id != first.id
    assert len(client.v1.payment_intents.list().data) == 2


def test_same_key_with_other_parameters_or_path_is_refused(client: stripe.StripeClient) -> None:
    intent = client.v1.payment_intents.create(params=VISA, options={"idempotency_key": "k"})
    with pytest.raises(stripe.IdempotencyError):
        client.v1.payment_intents.create(
            params={**VISA, "amount": 2600}, options={"idempotency_key": "k"}
        )
    with pytest.raises(stripe.IdempotencyError):
        client.v1.refunds.create(
            params={"payment_intent": intent.id}, options={"idempotency_key": "k"}
        )


async def test_concurrent_requests_with_one_key_execute_once(
    client: stripe.StripeClient, control: httpx.Client
) -> None:
    configure(control, latency_ms=100)
    calls = [
        client.v1.payment_intents.create_async(params=VISA, options={"idempotency_key": "same"})
        for _ in range(5)
    ]
    intents = await asyncio.gather(*calls)
    assert len({intent.id for intent in intents}) == 1
    assert control.get("/_emulator/healthz").json()["payment_intents"] == 1


async def test_auto_paging_walks_every_intent_newest_first(client: stripe.StripeClient) -> None:
    created = [
        client.v1.payment_intents.create(params={"amount": 100 + i, "currency": "usd"}).id
        for i in range(150)
    ]
    first_page = client.v1.payment_intents.list(params={"limit": 40})
    assert [pi.id for pi in first_page.auto_paging_iter()] == created[::-1]
    page = await client.v1.payment_intents.list_async(params={"limit": 100})
    assert len([pi async for pi in page.auto_paging_iter()]) == 150
    newer = client.v1.payment_intents.list(params={"limit": 5, "ending_before": created[10]})
    assert ([pi.id for pi in newer.data], newer.has_more) == (created[15:10:-1], True)


def test_metadata_is_kept_and_listed(client: stripe.StripeClient) -> None:
    metadata = {"order_id": "ord_42", "sku": "tv-55"}
    intent = client.v1.payment_intents.create(params={**VISA, "metadata": metadata})
    assert client.v1.payment_intents.retrieve(intent.id).metadata.to_dict() == metadata
    listed = client.v1.payment_intents.list().data
    assert [pi.metadata.to_dict() for pi in listed] == [metadata]


def test_refund_and_over_refund(client: stripe.StripeClient) -> None:
    intent = client.v1.payment_intents.create(params={**VISA, "amount": 5000})
    refund = client.v1.refunds.create(params={"payment_intent": intent.id, "amount": 2000})
    assert (refund.object, refund.amount, refund.status) == ("refund", 2000, "succeeded")
    with pytest.raises(stripe.InvalidRequestError) as too_much:
        client.v1.refunds.create(params={"payment_intent": intent.id, "amount": 4000})
    assert too_much.value.code == "charge_already_refunded"
    assert client.v1.refunds.create(params={"payment_intent": intent.id}).amount == 3000
    with pytest.raises(stripe.InvalidRequestError) as again:
        client.v1.refunds.create(params={"payment_intent": intent.id})
    assert again.value.code == "charge_already_refunded"
    assert client.v1.payment_intents.retrieve(intent.id).amount_refunded == 5000
    refunds = client.v1.refunds.list(params={"payment_intent": intent.id}).data
    assert [r.amount for r in refunds] == [3000, 2000]


def test_refunding_an_unpaid_intent_is_refused(client: stripe.StripeClient) -> None:
    unpaid = client.v1.payment_intents.create(params={"amount": 100, "currency": "usd"})
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.refunds.create(params={"payment_intent": unpaid.id})


def test_injected_failure_is_an_api_error_not_saved_against_the_key(
    client: stripe.StripeClient, control: httpx.Client
) -> None:
    configure(control, failure_rate=1)
    with pytest.raises(stripe.APIError) as info:
        client.v1.payment_intents.create(params=VISA, options={"idempotency_key": "k-500"})
    assert info.value.http_status == 500
    configure(control, failure_rate=0)
    intent = client.v1.payment_intents.create(params=VISA, options={"idempotency_key": "k-500"})
    assert intent.status == "succeeded"
    assert "Idempotent-Replayed" not in intent.last_response.headers


def test_injected_timeouts_never_charge_twice_under_one_key(
    client: stripe.StripeClient, control: httpx.Client
) -> None:
    """Half the timeouts hide a charge that happened; the retry must replay it."""
    replayed: set[bool] = set()
    attempts = 0
    while replayed != {True, False} and attempts < 40:
        attempts += 1
        key = f"order-{attempts}"
        params = {**VISA, "metadata": {"order_id": key}}
        configure(control, timeout_rate=1, hang_seconds=0.05)
        with pytest.raises(stripe.APIError) as info:
            client.v1.payment_intents.create(params=params, options={"idempotency_key": key})
        assert info.value.http_status == 504
        configure(control, timeout_rate=0)
        retry = client.v1.payment_intents.create(params=params, options={"idempotency_key": key})
        replayed.add(retry.last_response.headers.get("Idempotent-Replayed") == "true")
    assert replayed == {True, False}
    orders = [pi.metadata["order_id"] for pi in client.v1.payment_intents.list().auto_paging_iter()]
    assert sorted(orders) == sorted(f"order-{i}" for i in range(1, attempts + 1))


def test_auth_is_required(client: stripe.StripeClient, emulator_url: str) -> None:
    raw = httpx.post(f"{emulator_url}/v1/payment_intents", data={"amount": 1, "currency": "usd"})
    assert raw.status_code == 401
    assert raw.json()["error"]["type"] == "invalid_request_error"
    live = stripe.StripeClient("sk_live_nope", base_addresses={"api": emulator_url})
    with pytest.raises(stripe.AuthenticationError):
        live.v1.payment_intents.list()


def test_module_level_api_base(emulator_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stripe, "api_base", emulator_url)
    monkeypatch.setattr(stripe, "api_key", API_KEY)
    intent = stripe.PaymentIntent.create(**VISA, idempotency_key="module-level")
    assert stripe.PaymentIntent.retrieve(intent.id).status == "succeeded"


def test_a_key_older_than_its_ttl_is_forgotten(
    client: stripe.StripeClient, control: httpx.Client
) -> None:
    """Stripe may prune a key once it is 24 hours old; the TTL is configurable so that a
    test can see what a redrive a day later meets: the same key makes a second intent."""
    first = client.v1.payment_intents.create(params=VISA, options={"idempotency_key": "day-1"})
    assert client.v1.payment_intents.create(VISA, {"idempotency_key": "day-1"}).id == first.id
    configure(control, idempotency_ttl_seconds=0.3)
    time.sleep(0.5)
    again = client.v1.payment_intents.create(params=VISA, options={"idempotency_key": "day-1"})
    assert again.id != first.id and again.status == "succeeded"
    assert control.post("/_emulator/config", json={"idempotency_ttl_seconds": 0}).status_code == 400


def test_search_finds_intents_by_metadata_in_stripe_s_shape(
    client: stripe.StripeClient, control: httpx.Client
) -> None:
    ours = [
        client.v1.payment_intents.create({**VISA, "metadata": {"order_id": "o-s"}}).id
        for _ in range(3)
    ]
    client.v1.payment_intents.create({**VISA, "metadata": {"order_id": "o-other"}})
    page = client.v1.payment_intents.search({"query": "metadata['order_id']:'o-s'", "limit": 2})
    assert isinstance(page, stripe.SearchResultObject) and page.has_more
    assert [intent.id for intent in page.auto_paging_iter()] == ours[::-1]  # newest first
    raw = control.get(
        "/v1/payment_intents/search",
        params={"query": "metadata['order_id']:'o-s' AND status:'succeeded'"},
        headers={"Authorization": f"Bearer {API_KEY}"},
    ).json()
    assert raw["object"] == "search_result" and raw["url"] == "/v1/payment_intents/search"
    assert (len(raw["data"]), raw["has_more"], raw["next_page"]) == (3, False, None)
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.payment_intents.search({"query": "amount>100"})
    # Eventually consistent, as Stripe's: a new intent is not found until the lag has passed.
    configure(control, search_lag_seconds=60)
    assert client.v1.payment_intents.search({"query": "metadata['order_id']:'o-s'"}).data == []


def test_lists_filter_by_creation_time(client: stripe.StripeClient) -> None:
    intent = client.v1.payment_intents.create(VISA)
    refund = client.v1.refunds.create({"payment_intent": intent.id})
    now = int(time.time())
    for created, expected in (({"gte": now - 60}, 1), ({"gt": now + 60}, 0)):
        listed = client.v1.payment_intents.list({"created": created})
        assert [i.id for i in listed.auto_paging_iter()] == [intent.id][:expected]
        refunds = client.v1.refunds.list({"created": created})
        assert [r.id for r in refunds.auto_paging_iter()] == [refund.id][:expected]


def test_control_endpoints(control: httpx.Client) -> None:
    assert control.get("/_emulator/config").json() == {**DEFAULT_CONFIG, "hang_seconds": 20.0}
    changed = control.post("/_emulator/config", json={"latency_ms": 200}).json()
    assert changed["latency_ms"] == 200
    assert control.post("/_emulator/config", json={"failure_rate": 2}).status_code == 400
    assert control.post("/_emulator/config", json={"nope": 1}).status_code == 400


class WebhookReceiver:
    """A stdlib HTTP server in a thread that fails its first POST, to exercise retries."""

    def __init__(self) -> None:
        self.deliveries: queue.Queue[tuple[bytes, str]] = queue.Queue()
        self.failures_left = 1
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.failures_left > 0:
                    receiver.failures_left -= 1
                    self.send_response(500)
                else:
                    receiver.deliveries.put((body, self.headers["Stripe-Signature"]))
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhooks/stripe"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


def test_signed_webhooks_reach_a_receiver(
    client: stripe.StripeClient, control: httpx.Client, webhook_receiver: WebhookReceiver
) -> None:
    configure(control, webhook_url=webhook_receiver.url)
    paid = client.v1.payment_intents.create(params=VISA)
    with pytest.raises(stripe.CardError) as declined:
        client.v1.payment_intents.create(
            params={**VISA, "payment_method": "pm_card_chargeDeclined"}
        )
    received = {}
    for _ in range(2):
        body, signature = webhook_receiver.deliveries.get(timeout=5)
        event = stripe.Webhook.construct_event(body.decode(), signature, WEBHOOK_SECRET)
        received[event.type] = event.data.object.id
        with pytest.raises(stripe.SignatureVerificationError):
            stripe.Webhook.construct_event(body.decode() + " ", signature, WEBHOOK_SECRET)
    assert received == {
        "payment_intent.succeeded": paid.id,
        "payment_intent.payment_failed": declined.value.error.payment_intent.id,
    }
    assert [e.type for e in client.v1.events.list().data] == [
        "payment_intent.payment_failed",
        "payment_intent.succeeded",
    ]


def test_recorded_events_can_be_sent_again_and_out_of_order(
    client: stripe.StripeClient, control: httpx.Client, webhook_receiver: WebhookReceiver
) -> None:
    configure(control, webhook_url=webhook_receiver.url)
    with pytest.raises(stripe.CardError) as declined:
        client.v1.payment_intents.create(
            params={**VISA, "payment_method": "pm_card_chargeDeclined"}
        )
    intent_id = declined.value.error.payment_intent.id
    client.v1.payment_intents.confirm(intent_id, {"payment_method": "pm_card_visa"})
    failed, succeeded = reversed(client.v1.events.list().data)
    first = [webhook_receiver.deliveries.get(timeout=5) for _ in range(2)]
    resent = control.post(f"/_emulator/events/{failed.id}/resend", json={"times": 2})
    assert resent.status_code == 200 and resent.json() == {"resent": 2, "event": failed.id}
    again = [webhook_receiver.deliveries.get(timeout=5) for _ in range(2)]
    events = [stripe.Webhook.construct_event(b.decode(), s, WEBHOOK_SECRET) for b, s in again]
    # The same event, twice, after the success that followed it; its snapshot unchanged.
    assert [e.id for e in events] == [failed.id, failed.id]
    assert {e.data.object.status for e in events} == {"requires_payment_method"}
    assert {stripe.Webhook.construct_event(b.decode(), s, WEBHOOK_SECRET).id for b, s in first} == {
        failed.id,
        succeeded.id,
    }
    assert control.post("/_emulator/events/evt_missing/resend").status_code == 404
    assert (
        control.post(f"/_emulator/events/{failed.id}/resend", json={"times": 0}).status_code == 400
    )


def test_faults_may_spare_reads(client: stripe.StripeClient, control: httpx.Client) -> None:
    intent = client.v1.payment_intents.create(params=VISA)
    configure(control, failure_rate=1.0, faults_only_on_writes=True)
    assert client.v1.payment_intents.retrieve(intent.id).status == "succeeded"
    with pytest.raises(stripe.APIError):
        client.v1.payment_intents.create(params=VISA)


def sdk_at(port: int) -> stripe.StripeClient:
    return stripe.StripeClient(
        API_KEY,
        base_addresses={"api": f"http://127.0.0.1:{port}"},
        http_client=stripe.HTTPXClient(allow_sync_methods=True),
        max_network_retries=0,
    )


def test_with_a_state_file_a_restarted_emulator_keeps_charges_and_replays(tmp_path: Path) -> None:
    """`make up` keeps the emulator's state in var/: after a restart (Ctrl-C, or even kill -9
    a moment after the charge) the intent is still there and its idempotency key replays it."""
    state = tmp_path / "stripe.json"
    port = free_port()
    client = sdk_at(port)
    params = {**VISA, "metadata": {"order_id": "o-kept"}}
    process = start_emulator(port, state_file=state)
    try:
        first = client.v1.payment_intents.create(params, {"idempotency_key": "order-o-kept"})
        refund = client.v1.refunds.create({"payment_intent": first.id, "amount": 500})
    finally:
        stop(process)  # SIGTERM: uvicorn shuts down and the state is written
    process = start_emulator(port, state_file=state)
    try:
        kept = client.v1.payment_intents.retrieve(first.id)
        assert (kept.status, kept.metadata["order_id"]) == ("succeeded", "o-kept")
        replay = client.v1.payment_intents.create(params, {"idempotency_key": "order-o-kept"})
        assert replay.id == first.id
        assert client.v1.refunds.retrieve(refund.id).payment_intent == first.id
        second = client.v1.payment_intents.create(params, {"idempotency_key": "order-o-two"})
        time.sleep(2.5)  # past the snapshot interval
        process.kill()
        process.wait()
        process = start_emulator(port, state_file=state)
        assert client.v1.payment_intents.retrieve(second.id).status == "succeeded"
        listed = client.v1.payment_intents.list({"limit": 10})
        assert [intent.id for intent in listed.data] == [second.id, first.id]
    finally:
        stop(process)


def test_without_a_state_file_a_restart_forgets() -> None:
    port = free_port()
    client = sdk_at(port)
    process = start_emulator(port)
    try:
        created = client.v1.payment_intents.create(VISA)
    finally:
        stop(process)
    process = start_emulator(port)
    try:
        with pytest.raises(stripe.InvalidRequestError):
            client.v1.payment_intents.retrieve(created.id)
    finally:
        stop(process)
