"""The recipe's one database: an orders table and a products table (SQLAlchemy Core)."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Integer, MetaData, Table, Text, func

metadata = MetaData()

orders = Table(
    "orders",
    metadata,
    Column("id", Text, primary_key=True),
    Column("status", Text, nullable=False),
    Column("sku", Text, nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("email", Text, nullable=False),
    Column("payment_method", Text, nullable=False),
    Column("total", Integer),
    Column("intent_id", Text),
    Column("created_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
    Column("updated_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
)

products = Table(
    "products",
    metadata,
    Column("sku", Text, primary_key=True),
    Column("price", Integer, nullable=False),
    Column("stock", Integer, nullable=False),
)
