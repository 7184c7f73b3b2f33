"""orders.refund_reason: why an order's money went back

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("orders", sa.Column("refund_reason", sa.String(length=40), nullable=True))


def downgrade() -> None:
    op.drop_column("orders", "refund_reason")
