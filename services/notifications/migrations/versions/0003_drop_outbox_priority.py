"""outbox.priority goes: a message's priority is its route's, never a per-row override

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_column("outbox", "priority")


def downgrade() -> None:
    op.add_column("outbox", sa.Column("priority", sa.Integer(), nullable=True))
