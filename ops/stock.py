"""The audit's stock ledger (check 3): per sku, what the products table says and what the
reservations say must have happened to it, read in one statement (one snapshot, so a settle
committing between two reads can never look like a discrepancy).

Every unit in `stock` was received (`products.received`: created, restocked, replaced) and
not sold, or sold and given back: stock + sold - returned == received. `reserved` is what the
open reservations hold. A commit applied twice, a return lost or applied twice, a unit moved
without its reservation: each breaks one of these equalities.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Units per sku by what their reservations say: held (open), sold (the order was paid: the
# units left stock) and, of those, returned (the paid order was refunded).
STOCK_LEDGER = """
    WITH units AS (
        SELECT line->>'sku' AS sku, reservations.status, (line->>'quantity')::int AS quantity
        FROM reservations, jsonb_array_elements(reservations.lines) AS line
    ), moves AS (
        SELECT sku,
               sum(quantity) FILTER (WHERE status = 'reserved') AS held,
               sum(quantity) FILTER (WHERE status IN ('committed', 'returned')) AS sold,
               sum(quantity) FILTER (WHERE status = 'returned') AS returned
        FROM units GROUP BY sku
    )
    SELECT products.sku, products.stock, products.reserved, products.received,
           coalesce(moves.held, 0) AS held, coalesce(moves.sold, 0) AS sold,
           coalesce(moves.returned, 0) AS returned
    FROM products LEFT JOIN moves USING (sku)
    ORDER BY products.sku
"""


def sku_violations(row: Mapping[str, Any]) -> list[str]:
    """What does not add up for one sku (a row of STOCK_LEDGER)."""
    sku, stock, reserved = row["sku"], row["stock"], row["reserved"]
    found = []
    if not (stock >= 0 and 0 <= reserved <= stock):
        found.append(f"{sku}: stock {stock}, reserved {reserved}")
    if reserved != row["held"]:
        found.append(f"{sku}: reserved {reserved} but open reservations hold {row['held']}")
    if stock + row["sold"] - row["returned"] != row["received"]:
        found.append(
            f"{sku}: stock {stock} + sold {row['sold']} - returned {row['returned']} "
            f"!= received {row['received']}"
        )
    return found


def refund_violations(
    refunded: list[Mapping[str, Any]], reservations: Mapping[str, str]
) -> tuple[list[str], int]:
    """Refunded orders whose units are not back in stock: violations for those refunded
    longer ago than the grace (`overdue`), and how many more are on their way."""
    found, on_the_way = [], 0
    for order in refunded:
        status = reservations.get(order["id"])
        if status == "returned":
            continue
        if order["overdue"]:
            found.append(f"{order['id']} refunded but its units are not back ({status})")
        else:
            on_the_way += 1
    return found, on_the_way
