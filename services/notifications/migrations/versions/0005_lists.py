"""Audiences (issue 19 item 4): named lists, their members, the list a campaign targets

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lists",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "list_members",
        sa.Column("list_id", sa.String(length=40), nullable=False),
        sa.Column("subscriber_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "added_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.ForeignKeyConstraint(["list_id"], ["lists.id"]),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscribers.id"]),
        sa.PrimaryKeyConstraint("list_id", "subscriber_id"),
    )
    # A nullable column without a default: no rewrite of the campaigns table.
    op.add_column("campaigns", sa.Column("list_id", sa.String(length=40), nullable=True))
    op.create_foreign_key("campaigns_list_id_fkey", "campaigns", "lists", ["list_id"], ["id"])


def downgrade() -> None:
    op.drop_constraint("campaigns_list_id_fkey", "campaigns", type_="foreignkey")
    op.drop_column("campaigns", "list_id")
    op.drop_table("list_members")
    op.drop_table("lists")
