"""products.received: the net units put into stock, so that the audit can check, per sku,
stock + units sold - units returned == units received

Existing rows start from what their reservations say they must have received (stock, plus
the units of committed and returned reservations, minus those returned): the ledger opens
balanced, and every later receipt (create, restock, replace) moves it.

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
    op.add_column(
        "products", sa.Column("received", sa.Integer(), server_default="0", nullable=False)
    )
    op.execute(
        """
        UPDATE products SET received = products.stock + coalesce(moves.sold, 0)
                                       - coalesce(moves.returned, 0)
        FROM products AS p
        LEFT JOIN (
            SELECT line->>'sku' AS sku,
                   sum((line->>'quantity')::int)
                       FILTER (WHERE status IN ('committed', 'returned')) AS sold,
                   sum((line->>'quantity')::int) FILTER (WHERE status = 'returned') AS returned
            FROM reservations, jsonb_array_elements(lines) AS line
            GROUP BY 1
        ) AS moves ON moves.sku = p.sku
        WHERE products.sku = p.sku
        """
    )


def downgrade() -> None:
    op.drop_column("products", "received")
