"""The fault suite's table: one row per scenario."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Row:
    scenario: str
    accepted: int
    final: int
    lost: int
    duplicates: int
    recover_s: float
    note: str = ""


ROWS: list[Row] = []


def render() -> str:
    columns = ("accepted", "final", "lost", "dupes", "recover s")
    header = f"{'scenario':<34} " + " ".join(f"{name:>9}" for name in columns) + "  note"
    lines = ["fault suite", header, "-" * len(header)]
    for row in ROWS:
        lines.append(
            f"{row.scenario:<34} {row.accepted:>9} {row.final:>9} {row.lost:>9} "
            f"{row.duplicates:>9} {row.recover_s:>9.1f}  {row.note}"
        )
    return "\n".join(lines)
