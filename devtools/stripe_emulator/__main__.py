"""`python -m devtools.stripe_emulator`: one uvicorn process serving the emulator.

One process because all state lives in its memory: two workers would be two Stripes.
`--state-file` keeps that state across restarts (`make up` does; tests and benchmarks don't).
Command-line options override the `STRIPE_EMULATOR_*` environment variables.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import uvicorn

from .app import create_app
from .config import EmulatorConfig


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devtools.stripe_emulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=12111)
    parser.add_argument("--latency-ms", type=float, help="median added latency")
    parser.add_argument("--failure-rate", type=float, help="share of injected 500s, 0..1")
    parser.add_argument("--timeout-rate", type=float, help="share of injected timeouts, 0..1")
    parser.add_argument("--hang-seconds", type=float, help="how long an injected timeout hangs")
    parser.add_argument(
        "--idempotency-ttl-seconds", type=float, help="how long a key replays (24 h)"
    )
    parser.add_argument(
        "--search-lag-seconds", type=float, help="how long a new intent is unsearchable"
    )
    parser.add_argument("--webhook-url", help="where to POST signed events")
    parser.add_argument("--webhook-secret", help="signing secret (whsec_...)")
    parser.add_argument(
        "--state-file", type=Path, help="keep the state in this file across restarts"
    )
    parser.add_argument("--log-level", default="warning")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    config = EmulatorConfig.from_env(
        latency_ms=args.latency_ms,
        failure_rate=args.failure_rate,
        timeout_rate=args.timeout_rate,
        hang_seconds=args.hang_seconds,
        webhook_url=args.webhook_url,
        idempotency_ttl_seconds=args.idempotency_ttl_seconds,
        search_lag_seconds=args.search_lag_seconds,
        webhook_secret=args.webhook_secret,
    )
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s %(message)s")
    uvicorn.run(
        create_app(config, args.state_file),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=False,  # a log line per request would cost more than the request itself
        timeout_graceful_shutdown=2,  # do not wait out requests held by an injected timeout
    )


if __name__ == "__main__":
    main()
