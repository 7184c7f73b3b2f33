"""Bounces and complaints (issue 19 item 3): the subscriber's suppression, the campaign's
`bounced` and `complained` counters, a delivery's complaint time

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
    # Nullable columns and constant defaults: no table rewrite on PostgreSQL 11+.
    op.add_column("subscribers", sa.Column("suppressed_at", sa.DateTime(timezone=True)))
    op.add_column("subscribers", sa.Column("suppression", sa.Text()))
    for counter in ("bounced", "complained"):
        op.add_column(
            "campaigns", sa.Column(counter, sa.Integer(), nullable=False, server_default="0")
        )
    op.add_column(
        "campaign_deliveries", sa.Column("complained_at", sa.DateTime(timezone=True))
    )


def downgrade() -> None:
    op.drop_column("campaign_deliveries", "complained_at")
    op.drop_column("campaigns", "complained")
    op.drop_column("campaigns", "bounced")
    op.drop_column("subscribers", "suppression")
    op.drop_column("subscribers", "suppressed_at")
