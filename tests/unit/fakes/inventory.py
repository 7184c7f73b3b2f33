"""The inventory repository in memory: products and reservations as dicts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from services.inventory.domain import ReservationStatus, move_from
from services.inventory.repository import Hold, InventoryRepository, Row
from shared.messages.inventory import PricedLine
from shared.messages.orders import OrderLine
from tests.unit.fakes.uow import FakeUnitOfWork


class FakeInventory(InventoryRepository):
    def __init__(self) -> None:  # no unit of work: rows live in the dicts
        self.products: dict[str, dict[str, Any]] = {}
        self.reservations: dict[str, dict[str, Any]] = {}

    def add(self, sku: str, stock: int, price: int = 1000, reserved: int = 0) -> None:
        now = datetime.now(UTC)
        self.products[sku] = {
            "sku": sku,
            "name": sku,
            "price": price,
            "currency": "usd",
            "stock": stock,
            "reserved": reserved,
            "received": stock,
            "created_at": now,
            "updated_at": now,
        }

    async def put_product(self, sku: str, values: dict[str, Any]) -> Row | None:
        existing = self.products.get(sku)
        if existing is not None and existing["reserved"] > values["stock"]:
            return None
        if existing is None:
            self.add(sku, values["stock"])
        row = self.products[sku]
        row["received"] += values["stock"] - row["stock"]
        row.update(values)
        return {**self.products[sku], "new": existing is None}

    async def product(self, sku: str) -> Row | None:
        row = self.products.get(sku)
        return dict(row) if row else None

    async def products_after(self, after: str | None, limit: int) -> list[Row]:
        skus = sorted(s for s in self.products if after is None or s > after)[:limit]
        return [dict(self.products[sku]) for sku in skus]

    async def restock(self, sku: str, quantity: int) -> Row | None:
        if sku not in self.products:
            return None
        self.products[sku]["stock"] += quantity
        self.products[sku]["received"] += quantity
        return dict(self.products[sku])

    async def claim_reservation(self, order_id: str, lines: Sequence[OrderLine]) -> bool:
        if order_id in self.reservations:
            return False
        self.reservations[order_id] = {
            "order_id": order_id,
            "status": ReservationStatus.RESERVED,
            "reason": None,
            "lines": [line.model_dump() for line in lines],
            "currency": None,
        }
        return True

    async def reserve_one(self, order_id: str, line: OrderLine) -> Row | None:
        if not await self.claim_reservation(order_id, [line]):
            return None
        hold = await self.hold([line])
        row = self.reservations[order_id]
        if hold.short_sku is None:
            row.update(lines=[hold.lines[0].model_dump()], currency=hold.currency)
        else:
            reason = "out_of_stock" if line.sku in self.products else "unknown_sku"
            row.update(status=ReservationStatus.REJECTED, reason=reason)
        return dict(row)

    async def hold(self, lines: Sequence[OrderLine]) -> Hold:
        free = {sku: row["stock"] - row["reserved"] for sku, row in self.products.items()}
        for line in lines:
            if free.get(line.sku, 0) < line.quantity:
                return Hold([], None, short_sku=line.sku)
            free[line.sku] -= line.quantity
        for line in lines:
            self.products[line.sku]["reserved"] += line.quantity
        priced = [
            PricedLine(
                sku=line.sku, quantity=line.quantity, unit_price=self.products[line.sku]["price"]
            )
            for line in lines
        ]
        return Hold(priced, self.products[lines[-1].sku]["currency"])

    async def sku_exists(self, sku: str) -> bool:
        return sku in self.products

    async def reservation(self, order_id: str) -> Row | None:
        row = self.reservations.get(order_id)
        return dict(row) if row else None

    async def set_reservation(self, order_id, status, reason=None, lines=None, currency=None):
        row = self.reservations[order_id]
        row.update(status=status, reason=reason)
        if lines is not None:
            row.update(lines=[line.model_dump() for line in lines], currency=currency)

    async def settle(self, order_ids: Sequence[str], settle: str) -> int:
        moved = 0
        for order_id in dict.fromkeys(order_ids):
            row = self.reservations.get(order_id)
            move = move_from(row["status"] if row else None, settle)
            if row is None or move is None:
                continue
            row["status"] = move.target
            for line in row["lines"]:
                self.products[line["sku"]]["stock"] += move.stock * line["quantity"]
                self.products[line["sku"]]["reserved"] += move.reserved * line["quantity"]
            moved += 1
        return moved


class FakeInventoryWork(FakeUnitOfWork):
    def __init__(self) -> None:
        self.inventory = FakeInventory()
        super().__init__(self.inventory.products, self.inventory.reservations)

    def counts(self, sku: str) -> tuple[int, int]:
        """(stock, reserved) of a sku."""
        row = self.inventory.products[sku]
        return row["stock"], row["reserved"]
