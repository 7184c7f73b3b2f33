"""orders.reserved_at: when the inventory's reservation was applied (the expiry clock)

The expiry sweep counts the reservation timeout from here, not from `created_at`: time an
order spent waiting for the system (an unpublished outbox row, a backlog in the queues) is
not its customer's. Orders already reserved take `updated_at` (the moment they became
reserved, or a later payment write: never earlier than the reservation).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("orders", sa.Column("reserved_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE orders SET reserved_at = updated_at WHERE status = 'reserved'")
    op.create_index(
        "ix_orders_reserved_at",
        "orders",
        ["reserved_at"],
        postgresql_where=sa.text("status = 'reserved'"),
    )


def downgrade() -> None:
    op.drop_index("ix_orders_reserved_at", table_name="orders")
    op.drop_column("orders", "reserved_at")
