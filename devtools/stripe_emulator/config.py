"""Emulator settings: read from the environment once, changeable at run time.

Fault-injection tests flip failure and timeout rates on a running emulator
(`POST /_emulator/config`) instead of restarting it, so the settings are an
immutable value that the app swaps atomically; every request reads the current one.
"""

from __future__ import annotations

import dataclasses
import math
import os
import random
from collections.abc import Mapping
from typing import Any

# Local-only default, published in the contract; real deployments set STRIPE_WEBHOOK_SECRET.
DEFAULT_WEBHOOK_SECRET = "whsec_doorbuster_dev"  # noqa: S105
LATENCY_SIGMA = 0.25

ENV_NAMES = {
    "latency_ms": "STRIPE_EMULATOR_LATENCY_MS",
    "failure_rate": "STRIPE_EMULATOR_FAILURE_RATE",
    "timeout_rate": "STRIPE_EMULATOR_TIMEOUT_RATE",
    "timeout_hides_rate": "STRIPE_EMULATOR_TIMEOUT_HIDES_RATE",
    "hang_seconds": "STRIPE_EMULATOR_HANG_SECONDS",
    "idempotency_ttl_seconds": "STRIPE_EMULATOR_IDEMPOTENCY_TTL_SECONDS",
    "search_lag_seconds": "STRIPE_EMULATOR_SEARCH_LAG_SECONDS",
    "webhook_url": "STRIPE_EMULATOR_WEBHOOK_URL",
    "webhook_secret": "STRIPE_WEBHOOK_SECRET",
}
RUNTIME_FIELDS = (
    "latency_ms",
    "failure_rate",
    "timeout_rate",
    "timeout_hides_rate",
    "hang_seconds",
    "webhook_url",
    "faults_only_on_writes",
    "idempotency_ttl_seconds",
    "search_lag_seconds",
)


@dataclasses.dataclass(frozen=True)
class EmulatorConfig:
    """What the emulator adds on top of Stripe's behaviour: latency, faults, webhook target."""

    latency_ms: float = 0.0
    failure_rate: float = 0.0
    timeout_rate: float = 0.0
    # Of the injected timeouts, the share that answers only after processing the request (a
    # timeout that hides a success); the others hang before it and change nothing.
    timeout_hides_rate: float = 0.5
    hang_seconds: float = 20.0
    webhook_url: str | None = None
    webhook_secret: str = DEFAULT_WEBHOOK_SECRET
    # Injected failures and timeouts only on POSTs (creates, confirms, refunds), not on GETs.
    faults_only_on_writes: bool = False
    # How long a saved answer is replayed under its Idempotency-Key. Stripe may prune a key
    # once it is 24 hours old; tests shorten it to show that a charge redriven after that
    # still charges once.
    idempotency_ttl_seconds: float = 24 * 3600.0
    # The Search API is eventually consistent ("searchable in less than a minute", Stripe's
    # docs): an intent created within this many seconds is not found by a search yet.
    search_lag_seconds: float = 0.0

    def __post_init__(self) -> None:
        """Refuse nonsense early, so a typo in a fault test fails loudly, not silently."""
        if min(self.latency_ms, self.hang_seconds, self.search_lag_seconds) < 0:
            raise ValueError("latency_ms, hang_seconds and search_lag_seconds must be >= 0")
        if self.idempotency_ttl_seconds <= 0:
            raise ValueError("idempotency_ttl_seconds must be > 0")
        for name in ("failure_rate", "timeout_rate", "timeout_hides_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if not self.webhook_secret:
            raise ValueError("webhook_secret must not be empty")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> EmulatorConfig:
        """Settings from `STRIPE_EMULATOR_*` variables; non-None `overrides` (the CLI) win."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field, var in ENV_NAMES.items():
            if env.get(var):
                values[field] = env[var]
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**_coerce(values))

    def updated(self, changes: Mapping[str, Any]) -> EmulatorConfig:
        """A copy with the runtime-changeable fields in `changes` applied (ValueError if bad)."""
        unknown = set(changes) - set(RUNTIME_FIELDS)
        if unknown:
            raise ValueError(f"unknown settings: {sorted(unknown)}; allowed: {RUNTIME_FIELDS}")
        return dataclasses.replace(self, **_coerce(dict(changes)))

    def public(self) -> dict[str, Any]:
        """The settings as shown by `GET /_emulator/config` (the signing secret stays hidden)."""
        return {name: getattr(self, name) for name in RUNTIME_FIELDS}

    def draw_latency(self) -> float:
        """Seconds to delay one request: lognormal around the median, like real API latency."""
        if self.latency_ms <= 0:
            return 0.0
        return random.lognormvariate(math.log(self.latency_ms), LATENCY_SIGMA) / 1000.0


def _coerce(values: dict[str, Any]) -> dict[str, Any]:
    """Numbers may arrive as strings (env) or JSON numbers; an empty webhook URL means none."""
    out = dict(values)
    numbers = ("latency_ms", "failure_rate", "timeout_rate", "timeout_hides_rate", "hang_seconds")
    for name in (*numbers, "idempotency_ttl_seconds", "search_lag_seconds"):
        if name in out:
            out[name] = float(out[name])
    if "webhook_url" in out:
        out["webhook_url"] = out["webhook_url"] or None
    if isinstance(out.get("faults_only_on_writes"), str):
        out["faults_only_on_writes"] = out["faults_only_on_writes"].lower() in ("1", "true")
    return out
