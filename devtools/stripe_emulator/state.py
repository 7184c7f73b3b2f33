"""In-memory state: objects by id, creation order for lists, and the idempotency store.

Everything is O(1) per request except paging, which is O(limit): benchmarks push
hundreds of requests per second through one process for minutes, and `localstripe`
was measured slowing from 24 to 5 PaymentIntents/s as its state grew.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import random
import string
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from .errors import no_such

_ID_ALPHABET = string.ascii_letters + string.digits
IDEMPOTENCY_TTL_SECONDS = 24 * 3600.0
MAX_IDEMPOTENCY_KEYS = 200_000


def new_id(prefix: str) -> str:
    """A Stripe-looking id (`pi_3Q...`); unique enough, and not a secret, so `random` is fine."""
    return prefix + "_" + "".join(random.choices(_ID_ALPHABET, k=24))


class Collection:
    """Objects of one kind: dict for lookups, an append-only id list for newest-first paging."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._by_id: dict[str, dict[str, Any]] = {}
        self._order: list[str] = []
        self._position: dict[str, int] = {}

    def add(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Store a new object; its creation order is its insertion order."""
        self._position[obj["id"]] = len(self._order)
        self._order.append(obj["id"])
        self._by_id[obj["id"]] = obj
        return obj

    def get(self, object_id: str) -> dict[str, Any] | None:
        return self._by_id.get(object_id)

    def objects(self) -> list[dict[str, Any]]:
        """Every object, oldest first (what a snapshot keeps)."""
        return [self._by_id[i] for i in self._order]

    def __len__(self) -> int:
        return len(self._order)

    def ids_where(self, predicate: Callable[[dict[str, Any]], bool]) -> list[str]:
        """Ids (in creation order) of objects matching a list filter; a full scan."""
        return [i for i in self._order if predicate(self._by_id[i])]

    def page(
        self,
        limit: int,
        starting_after: str | None = None,
        ending_before: str | None = None,
        ids: Sequence[str] | None = None,
    ) -> tuple[list[dict[str, Any]], bool]:
        """One newest-first page and whether more follow, with Stripe's cursor semantics.

        `ids` restricts the list to a filtered subset (in creation order); cursors
        are then looked up in that subset, which filters keep small.
        """
        order = self._order if ids is None else ids
        if starting_after is not None:
            end = self._index(order, starting_after, "starting_after", ids is None)
            start = max(0, end - limit)
            return self._objects(order[start:end]), start > 0
        if ending_before is not None:
            start = self._index(order, ending_before, "ending_before", ids is None) + 1
            end = min(len(order), start + limit)
            return self._objects(order[start:end]), end < len(order)
        start = max(0, len(order) - limit)
        return self._objects(order[start:]), start > 0

    def _index(self, order: Sequence[str], cursor: str, param: str, whole: bool) -> int:
        """Position of a cursor object; an unknown cursor is a 400, as in Stripe."""
        position = self._position.get(cursor) if whole else _find(order, cursor)
        if position is None:
            raise no_such(self.kind, cursor, param)
        return position

    def _objects(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        return [self._by_id[i] for i in reversed(ids)]


def _find(order: Sequence[str], cursor: str) -> int | None:
    try:
        return order.index(cursor)
    except ValueError:
        return None


@dataclasses.dataclass(frozen=True)
class SavedResponse:
    """The first answer given under an Idempotency-Key, replayed byte for byte."""

    path: str
    fingerprint: bytes
    status: int
    body: bytes
    request_id: str
    saved_at: float


def fingerprint(params: Any) -> bytes:
    """A digest of the decoded parameters, so field order on the wire does not matter."""
    return hashlib.sha256(orjson.dumps(params, option=orjson.OPT_SORT_KEYS)).digest()


class IdempotencyStore:
    """Saved responses per key, plus the keys being executed right now.

    Concurrent requests with one key must not both execute: the second waits for
    the first to finish (`claim`) and then replays its saved response, which is
    simpler for clients than Stripe's 409. Keys expire after `ttl()` seconds (24 hours,
    like Stripe's, unless the emulator's `idempotency_ttl_seconds` says otherwise), and
    the oldest are dropped beyond MAX_IDEMPOTENCY_KEYS so that a long benchmark (the SDK
    sends a key with every POST) cannot exhaust memory.
    """

    def __init__(self, ttl: Callable[[], float] = lambda: IDEMPOTENCY_TTL_SECONDS) -> None:
        self._ttl = ttl
        self._saved: dict[str, SavedResponse] = {}
        self._running: dict[str, asyncio.Event] = {}

    async def claim(self, key: str) -> SavedResponse | None:
        """Return the saved response for `key`, or None after taking the key for execution."""
        while True:
            saved = self._lookup(key)
            if saved is not None:
                return saved
            running = self._running.get(key)
            if running is None:
                self._running[key] = asyncio.Event()
                return None
            await running.wait()

    def release(self, key: str, response: SavedResponse | None) -> None:
        """Finish executing `key`: save its response (if it is to be kept) and wake waiters."""
        if response is not None:
            self._saved[key] = response
            self._prune()
        running = self._running.pop(key, None)
        if running is not None:
            running.set()

    def clear(self) -> None:
        self._saved.clear()

    def saved(self) -> list[tuple[str, SavedResponse]]:
        """Saved responses, oldest first (what a snapshot keeps)."""
        return list(self._saved.items())

    def restore(self, saved: list[tuple[str, SavedResponse]]) -> None:
        self._saved = dict(saved)

    def _lookup(self, key: str) -> SavedResponse | None:
        saved = self._saved.get(key)
        if saved is not None and time.time() - saved.saved_at > self._ttl():
            del self._saved[key]
            return None
        return saved

    def _prune(self) -> None:
        """Drop expired or excess keys from the front (dicts keep insertion = save order)."""
        horizon = time.time() - self._ttl()
        while self._saved:
            oldest_key = next(iter(self._saved))
            oldest = self._saved[oldest_key]
            if oldest.saved_at >= horizon and len(self._saved) <= MAX_IDEMPOTENCY_KEYS:
                return
            del self._saved[oldest_key]


class Store:
    """All emulated Stripe state; `reset` gives a fresh account between tests."""

    def __init__(self, idempotency_ttl: Callable[[], float] | None = None) -> None:
        self.idempotency = IdempotencyStore(idempotency_ttl or (lambda: IDEMPOTENCY_TTL_SECONDS))
        # Bumped on every request that may change state, so a snapshot is taken only then.
        self.version = 0
        self.reset()

    def reset(self) -> None:
        self.version += 1
        self.payment_intents = Collection("payment_intent")
        self.refunds = Collection("refund")
        self.events = Collection("event")
        self.refunds_by_intent: dict[str, list[str]] = {}
        self.intent_by_charge: dict[str, str] = {}
        self.idempotency.clear()
