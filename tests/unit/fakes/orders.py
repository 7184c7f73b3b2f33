"""The orders repository in memory, and a payment provider that answers as told."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from services.orders.domain import OrderStatus, transition
from services.orders.payments import ProviderIntent, StripeGateway
from services.orders.repository import (
    KeyClaim,
    NewOrder,
    Order,
    OrderNotFound,
    OrderRepository,
    Placement,
)
from shared.messaging.wire import OutgoingTask
from tests.unit.fakes.uow import FakeUnitOfWork


class FakeOrders(OrderRepository):
    def __init__(self) -> None:  # no unit of work: rows live in `rows`
        self.rows: dict[str, dict[str, Any]] = {}
        self.keys: dict[tuple[str, str], tuple[str, str]] = {}
        self.keys_in_flight: set[tuple[str, str]] = set()
        # The outbox as the sweep sees it: orders with a message not yet published (a test
        # puts them here; the fake unit of work "publishes" on commit).
        self.unpublished: set[str] = set()

    async def place(self, order: NewOrder, claim: KeyClaim, first: OutgoingTask) -> Placement:
        if (claim.scope, claim.key) in self.keys_in_flight:
            return Placement(held=False, order=None)
        if (claim.scope, claim.key) in self.keys:
            return Placement(held=True, order=None)
        self.keys[(claim.scope, claim.key)] = (claim.fingerprint, order.id)
        now = datetime.now(UTC)
        self.rows[order.id] = {
            "id": order.id,
            "status": OrderStatus.PENDING.value,
            "reason": None,
            "customer_id": order.customer_id,
            "customer_email": order.customer_email,
            "payment_method": order.payment_method,
            "items": order.items,
            "total": None,
            "currency": None,
            "payment_status": None,
            "payment_intent_id": None,
            "refund_reason": None,
            "reserved_at": None,
            "created_at": now,
            "updated_at": now,
        }
        return Placement(held=True, order=dict(self.rows[order.id]))

    async def key_use(self, scope: str, key: str) -> tuple[str, str]:
        return self.keys[(scope, key)]

    async def get(self, order_id: str, lock: bool = False) -> Order:
        if order_id not in self.rows:
            raise OrderNotFound(order_id)
        return dict(self.rows[order_id])

    async def read(self, order_id: str) -> Order:
        return await self.get(order_id)

    async def newest(self, customer_id, after, limit) -> list[Order]:
        rows = sorted(self.rows.values(), key=lambda r: (r["created_at"], r["id"]), reverse=True)
        rows = [r for r in rows if customer_id is None or r["customer_id"] == customer_id]
        if after is not None:
            rows = [r for r in rows if (r["created_at"], r["id"]) < after]
        return [dict(row) for row in rows[:limit]]

    async def expirable(self, timeout: timedelta, limit: int) -> list[Order]:
        cutoff = datetime.now(UTC) - timeout
        rows = [
            r
            for r in sorted(self.rows.values(), key=lambda r: r["reserved_at"] or cutoff)
            if r["status"] == OrderStatus.RESERVED
            and r["reserved_at"] < cutoff
            and r["id"] not in self.unpublished
        ]
        return [dict(row) for row in rows[:limit]]

    async def stalled(self, age: timedelta, limit: int) -> tuple[int, list[str]]:
        cutoff = datetime.now(UTC) - age
        rows = [
            r["id"]
            for r in sorted(self.rows.values(), key=lambda r: r["created_at"])
            if r["status"] == OrderStatus.PENDING
            and r["created_at"] < cutoff
            and r["id"] not in self.unpublished
        ]
        return len(rows), rows[:limit]

    async def charged_or_listed(self, since: datetime, order_ids) -> list[Order]:
        return [
            dict(row)
            for row in self.rows.values()
            if (row["created_at"] >= since and row["status"] in ("paid", "refunded"))
            or row["id"] in order_ids
        ]

    async def advance(self, order_id, current, target, emitting=(), **values) -> Order | None:
        # The emitted messages are the unit of work's to send (`committed_alone`).
        transition(order_id, current, target)
        if self.rows[order_id]["status"] != current:
            return None
        if target == OrderStatus.RESERVED:
            values["reserved_at"] = datetime.now(UTC)
        await self._write(order_id, status=target, **values)
        return dict(self.rows[order_id])

    async def _write(self, order_id: str, **values: Any) -> None:
        self.rows[order_id].update(values, updated_at=datetime.now(UTC))


class FakeOrdersWork(FakeUnitOfWork):
    def __init__(self) -> None:
        self.orders = FakeOrders()
        super().__init__(self.orders.rows, self.orders.keys)

    def order(self, order_id: str) -> dict[str, Any]:
        return self.orders.rows[order_id]


class FakeProvider(StripeGateway):
    """Charges succeed (or are declined for `pm_card_chargeDeclined`), once per order: a
    repeated charge returns the first intent, as Stripe's idempotency key does, until
    `forget_keys` (Stripe pruning keys after 24 hours): then a charge makes a new intent."""

    def __init__(self) -> None:  # no settings, no client
        self.key_trust = timedelta(hours=23)
        self.intents: dict[str, ProviderIntent] = {}  # the order's intent, by its key
        self.every: list[ProviderIntent] = []  # every intent made, oldest first
        self.charges = 0
        self.refunds: list[str] = []
        self.refunded: dict[str, int] = {}
        self.retrievals = 0
        self.searches = 0
        self.failure: Exception | None = None

    async def charge(self, order_id: str, amount: int, currency: str, payment_method: str):
        if self.failure is not None:
            raise self.failure
        self.charges += 1
        if order_id not in self.intents:
            declined = payment_method == "pm_card_chargeDeclined"
            self.intents[order_id] = self.add(
                order_id,
                amount,
                currency,
                status="requires_payment_method" if declined else "succeeded",
                error_code="card_declined" if declined else None,
            )
        return self.intents[order_id].outcome()

    def add(self, order_id: str | None, amount: int, currency: str = "usd", **values):
        """An intent the provider holds (made by a charge, or by a test)."""
        earlier = sum(intent.order_id == order_id for intent in self.every)
        intent = ProviderIntent(
            id=f"pi_{order_id}" + (f"_{earlier + 1}" if earlier else ""),
            amount=amount,
            currency=currency,
            order_id=order_id,
            correlation_id=None,
            amount_received=amount if values.get("status", "succeeded") == "succeeded" else 0,
            created=len(self.every),
            **{"status": "succeeded", "error_code": None, **values},
        )
        self.every.append(intent)
        return intent

    def forget_keys(self) -> None:
        self.intents.clear()

    async def retrieve(self, intent_id: str) -> ProviderIntent | None:
        self.retrievals += 1
        return next((i for i in self.every if i.id == intent_id), None)

    async def find_intents(self, order_id: str) -> list[ProviderIntent]:
        self.searches += 1
        return [intent for intent in self.every if intent.order_id == order_id]

    async def list_intents(self, since: datetime) -> list[ProviderIntent]:
        return list(reversed(self.every))

    async def refunded_amounts(self, since: datetime) -> dict[str, int]:
        return dict(self.refunded)

    async def refund(self, order_id: str, intent_id: str, duplicate: bool = False) -> str:
        self.refunds.append(intent_id)
        intent = next(i for i in self.every if i.id == intent_id)
        self.refunded[intent_id] = intent.amount_received
        return f"re_{intent_id}"
