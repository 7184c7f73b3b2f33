"""The inventory database: products, reservations (one per order) and the outbox."""

from __future__ import annotations

from sqlalchemy import (
    CheckConstraint,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB

from shared.messaging.outbox import outbox_table

metadata = MetaData()

products = Table(
    "products",
    metadata,
    Column("sku", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("price", Integer, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("stock", Integer, nullable=False),
    Column("reserved", Integer, nullable=False, server_default="0"),
    # Net units an admin ever put into stock: the created stock, every restock, each
    # replace's difference. The audit checks stock + sold - returned == received per sku;
    # the order flow's statements never touch it.
    Column("received", Integer, nullable=False, server_default="0"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # The database itself refuses an oversell, whatever the code above it does.
    CheckConstraint("reserved >= 0 AND stock >= 0 AND reserved <= stock", name="stock_balance"),
    CheckConstraint("price > 0", name="price_positive"),
)

# One row per order: what was reserved and where the reservation stands. It makes every
# inventory task idempotent (a redelivered task finds the row and changes nothing twice).
reservations = Table(
    "reservations",
    metadata,
    Column("order_id", String(64), primary_key=True),
    Column("status", String(16), nullable=False),  # ReservationStatus
    Column("reason", String(32)),
    Column("lines", JSONB, nullable=False),
    Column("currency", String(3)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

outbox = outbox_table(metadata)
