"""Inventory rules, free of frameworks.

Units move `available -> reserved` when an order is reserved, leave `reserved` and `stock`
together when it is paid (commit), and go back to `available` when it is released. A
reservation is all-or-nothing, and rows are always locked in sku order so that overlapping
multi-item orders cannot deadlock.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from shared.messages.orders import OrderLine


class ReservationStatus(StrEnum):
    RESERVED = "reserved"
    REJECTED = "rejected"
    COMMITTED = "committed"
    RELEASED = "released"
    RETURNED = "returned"  # paid, then refunded: the units went back into stock


@dataclass(frozen=True)
class Move:
    """A reservation in status `current` goes to `target`, and each of its lines' units move
    by these signs (-1, 0, +1 times the line's quantity) in `stock` and in `reserved`."""

    current: ReservationStatus
    target: ReservationStatus
    stock: int
    reserved: int


# What each settling message does, from each status it can meet. The three messages of an
# order (commit, release, return) may arrive in any order and any number of times, so every
# status they leave is one none of them moves again, and the end is the same whatever came
# first: a return that overtakes its commit settles both at once (the units leave `reserved`
# and stay in `stock`), and the commit that arrives after it finds nothing left to do. Commit
# and release exclude each other: whichever comes first decides.
COMMIT = (Move(ReservationStatus.RESERVED, ReservationStatus.COMMITTED, stock=-1, reserved=-1),)
RELEASE = (Move(ReservationStatus.RESERVED, ReservationStatus.RELEASED, stock=0, reserved=-1),)
RETURN = (
    Move(ReservationStatus.COMMITTED, ReservationStatus.RETURNED, stock=+1, reserved=0),
    Move(ReservationStatus.RESERVED, ReservationStatus.RETURNED, stock=0, reserved=-1),
)


SETTLES: dict[str, tuple[Move, ...]] = {"commit": COMMIT, "release": RELEASE, "return": RETURN}


def move_from(status: str | None, settle: str) -> Move | None:
    """The move a settling message (`commit`, `release`, `return`) makes from `status`
    (None: no reservation), if any."""
    return next((move for move in SETTLES[settle] if move.current == status), None)


class ProductNotFound(LookupError):
    pass


def in_lock_order(lines: list[OrderLine]) -> list[OrderLine]:
    """The one order in which product rows are locked: by sku."""
    return sorted(lines, key=lambda line: line.sku)


def available(stock: int, reserved: int) -> int:
    return max(stock - reserved, 0)
