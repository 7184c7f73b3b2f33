"""The emulator's state in a file, so a restarted `make up` still knows every charge it made.

Real Stripe keeps PaymentIntents for good; an emulator that forgets them on restart makes
`make audit` report every earlier paid order as uncharged, and would charge a redelivered
order a second time (its idempotency key forgotten). `make up` therefore runs the emulator
with `--state-file var/stripe-emulator.json`: the whole state (objects in creation order and
the saved idempotent responses) is written there, atomically (a temporary file renamed over
it), within `interval` seconds of a change and on shutdown, and read back at start. A
`kill -9` loses at most the last interval. Tests and benchmarks run without a file, in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path
from typing import Any

import orjson

from .state import Collection, SavedResponse, Store

log = logging.getLogger(__name__)
FORMAT = 1
COLLECTIONS = ("payment_intents", "refunds", "events")


def dump(store: Store) -> bytes:
    saved = [
        {
            "key": key,
            "path": response.path,
            "fingerprint": response.fingerprint.hex(),
            "status": response.status,
            "body": response.body.decode(),
            "request_id": response.request_id,
            "saved_at": response.saved_at,
        }
        for key, response in store.idempotency.saved()
    ]
    state: dict[str, Any] = {name: getattr(store, name).objects() for name in COLLECTIONS}
    state |= {
        "format": FORMAT,
        "refunds_by_intent": store.refunds_by_intent,
        "intent_by_charge": store.intent_by_charge,
        "idempotency": saved,
    }
    return orjson.dumps(state)


def load(store: Store, payload: bytes) -> None:
    state = orjson.loads(payload)
    if state.get("format") != FORMAT:
        raise ValueError(f"unknown snapshot format {state.get('format')!r}")
    store.reset()
    for name in COLLECTIONS:
        collection: Collection = getattr(store, name)
        for obj in state[name]:
            collection.add(obj)
    store.refunds_by_intent = state["refunds_by_intent"]
    store.intent_by_charge = state["intent_by_charge"]
    store.idempotency.restore(
        [
            (
                saved["key"],
                SavedResponse(
                    saved["path"],
                    bytes.fromhex(saved["fingerprint"]),
                    saved["status"],
                    saved["body"].encode(),
                    saved["request_id"],
                    saved["saved_at"],
                ),
            )
            for saved in state["idempotency"]
        ]
    )


class Snapshots:
    """Keeps `path` up to date with `store` while the emulator runs."""

    def __init__(self, store: Store, path: Path, interval: float = 1.0) -> None:
        self.store, self.path, self.interval = store, path, interval
        self._saved_version: int | None = None
        self._task: asyncio.Task[None] | None = None

    def restore(self) -> None:
        """Read the file if there is one (a missing file is a fresh account)."""
        if self.path.exists():
            load(self.store, self.path.read_bytes())
            log.warning(
                "state restored from %s: %d payment intents",
                self.path,
                len(self.store.payment_intents),
            )
        self._saved_version = self.store.version

    def save(self, force: bool = False) -> None:
        if self.store.version == self._saved_version and not force:
            return
        version, payload = self.store.version, dump(self.store)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".tmp")
        partial.write_bytes(payload)
        os.replace(partial, self.path)
        self._saved_version = version

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.save(force=True)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.save()
