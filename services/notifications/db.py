"""The notifications database: transactional mails (one per order and kind) and the outbox."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
)

from shared.outbox import outbox_table

metadata = MetaData()

notifications = Table(
    "notifications",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("order_id", String(40), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("to", String(320), nullable=False),
    Column("status", String(16), nullable=False),  # sending|sent|failed
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_error", Text),
    Column("claimed_at", DateTime(timezone=True)),
    Column("sent_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # At most one mail of each kind per order, whatever is redelivered.
    UniqueConstraint("order_id", "kind", name="uq_notification_order_kind"),
)

outbox = outbox_table(metadata)
