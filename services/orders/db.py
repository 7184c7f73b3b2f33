"""The orders database: orders, idempotency keys and the outbox."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB

from shared.messaging.outbox import outbox_table

metadata = MetaData()

orders = Table(
    "orders",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("status", String(20), nullable=False),
    Column("reason", String(40)),
    Column("customer_id", String(100), nullable=False),
    Column("customer_email", String(320), nullable=False),
    Column("payment_method", String(100), nullable=False),
    # [{"sku", "quantity", "unit_price"}]; unit_price is null until the order is priced.
    Column("items", JSONB, nullable=False),
    Column("total", Integer),
    Column("currency", String(3)),
    Column("payment_status", String(20)),
    Column("payment_intent_id", String(100)),
    # Why the money went back: `requested` (a cancelled paid order) or `paid_after_<status>`
    # (the provider took it after the order was cancelled or recorded as failed).
    Column("refund_reason", String(40)),
    # When the inventory's reservation was applied (pending -> reserved): the expiry clock.
    Column("reserved_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_orders_customer_created", "customer_id", "created_at", "id"),
    Index(
        "ix_orders_open",
        "status",
        "updated_at",
        postgresql_where="status IN ('pending', 'reserved')",
    ),
    Index("ix_orders_reserved_at", "reserved_at", postgresql_where="status = 'reserved'"),
)

# Idempotency-Key records, scoped to the storefront API key (stored as a hash, never the key).
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("scope", String(64), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("order_id", String(40)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

outbox = outbox_table(metadata)
