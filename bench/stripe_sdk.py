"""The Stripe SDK's client CPU per call, by HTTP transport: HTTPX (the SDK's default async
client) against aiohttp (`stripe.AIOHTTPClient`), side by side against the emulator.

    python -m bench.stripe_sdk [--calls 400] [--repeats 5] [--concurrency 20]

Starts the Stripe emulator (its own process, no added latency) and creates confirmed
PaymentIntents through `stripe.StripeClient` exactly as the payments gateway does (one client,
`max_network_retries=0`, an idempotency key per call), `--concurrency` at a time, alternating
the two transports within each repeat. Reports this process's CPU per call (the emulator's is
not counted: it is a stand-in), medians of the repeats, and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
import uuid

import aiohttp
import httpx
import stripe

from bench.harness import ROOT
from bench.report import stamp, write_section

PORT = 23911 + int(os.environ.get("DOORBUSTER_TEST_SLOT", "0")) * 7
TITLE = "Stripe SDK: client CPU per call by HTTP transport"
TRANSPORTS = ("httpx", "aiohttp")


def http_client(transport: str) -> stripe.HTTPClient:
    if transport == "httpx":
        return stripe.HTTPXClient(timeout=10)
    return stripe.AIOHTTPClient(timeout=aiohttp.ClientTimeout(total=10))


async def cpu_ms_per_call(transport: str, calls: int, concurrency: int) -> float:
    http = http_client(transport)
    client = stripe.StripeClient(
        "sk_test_bench",
        base_addresses={"api": f"http://127.0.0.1:{PORT}"},
        http_client=http,
        max_network_retries=0,
    )
    run = uuid.uuid4().hex[:8]

    async def create(index: int) -> None:
        order_id = f"ord_{run}_{index}"
        await client.v1.payment_intents.create_async(
            {
                "amount": 2500,
                "currency": "usd",
                "payment_method": "pm_card_visa",
                "confirm": True,
                "payment_method_types": ["card"],
                "metadata": {"order_id": order_id},
            },
            {"idempotency_key": f"bench-{order_id}"},
        )

    try:
        await asyncio.gather(*(create(-1 - i) for i in range(concurrency)))  # warm up
        started = time.process_time()
        for first in range(0, calls, concurrency):
            await asyncio.gather(*(create(i) for i in range(first, first + concurrency)))
        return (time.process_time() - started) * 1000 / calls
    finally:
        await http.close_async()


def wait_for_emulator() -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{PORT}/_emulator/config", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError("the Stripe emulator did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=20)
    args = parser.parse_args()
    emulator = subprocess.Popen(
        [sys.executable, "-m", "devtools.stripe_emulator", "--port", str(PORT)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    results: dict[str, list[float]] = {name: [] for name in TRANSPORTS}
    try:
        wait_for_emulator()
        for _ in range(args.repeats):
            for name in TRANSPORTS:
                ms = asyncio.run(cpu_ms_per_call(name, args.calls, args.concurrency))
                results[name].append(ms)
                print(f"{name}: {ms:.3f} ms of client CPU per PaymentIntent", flush=True)
    finally:
        emulator.terminate()
        emulator.wait(10)
    median = {name: statistics.median(values) for name, values in results.items()}
    rows = "\n".join(
        f"| {name} | {median[name]:.2f} | {', '.join(f'{v:.2f}' for v in results[name])} |"
        for name in TRANSPORTS
    )
    command = "python -m bench.stripe_sdk" + (
        f" --calls {args.calls} --repeats {args.repeats} --concurrency {args.concurrency}"
    )
    body = f"""{stamp(command)}

One `stripe.StripeClient` per transport, confirmed PaymentIntents against the emulator (no
added latency), {args.concurrency} at a time, {args.calls} per repeat; the client process's CPU
per call (the emulator's not counted).

| transport | CPU ms per call (median) | repeats |
| --- | ---: | --- |
{rows}

aiohttp costs {median["aiohttp"] / median["httpx"]:.2f}x what HTTPX costs per call: the
payments gateway (services/orders/payments.py) uses `stripe.AIOHTTPClient`."""
    print(f"wrote {write_section(TITLE, body)}")


if __name__ == "__main__":
    main()
