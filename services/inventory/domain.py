"""Inventory rules, free of frameworks.

Units move `available -> reserved` when an order is reserved, leave `reserved` and `stock`
together when it is paid (commit), and go back to `available` when it is released. A
reservation is all-or-nothing, and rows are always locked in sku order so that overlapping
multi-item orders cannot deadlock.
"""

from __future__ import annotations

from enum import StrEnum

from shared.contracts import OrderLine


class ReservationStatus(StrEnum):
    RESERVED = "reserved"
    REJECTED = "rejected"
    COMMITTED = "committed"
    RELEASED = "released"
    RETURNED = "returned"  # paid, then refunded: the units went back into stock


class ProductNotFound(LookupError):
    pass


def in_lock_order(lines: list[OrderLine]) -> list[OrderLine]:
    """The one order in which product rows are locked: by sku."""
    return sorted(lines, key=lambda line: line.sku)


def available(stock: int, reserved: int) -> int:
    return max(stock - reserved, 0)
