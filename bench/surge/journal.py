"""The files of one surge run, written by the Locust process and the orchestrator, read by the
report. One place names them and their columns, so writer and reader cannot drift apart.

Everything is plain CSV/JSON in the run folder (`var/surge/<run>/`): a run can be re-rendered
(`python -m bench.surge.report <run folder>`) or inspected with any tool.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

REQUESTS = "requests.csv"  # one row per request or custom event (Locust side)
REQUEST_COLUMNS = ("ts", "type", "name", "ms", "code", "error")
USERS = "users.csv"  # running user count, once a second (Locust side)
USER_COLUMNS = ("ts", "users")
ACCEPTED = "accepted.csv"  # every order the surge placed, when its checkout was accepted
ACCEPTED_COLUMNS = ("order_id", "kind", "ts")
SEEN_FINAL = "seen_final.csv"  # orders the shoppers followed to a final status
ORDERS = "orders.csv"  # every accepted order with its final status (orchestrator, after settling)
ORDER_COLUMNS = ("order_id", "kind", "status", "reason", "created", "updated", "final_ms")
QUEUES = "queues.csv"  # queue depths sampled during the run (orchestrator)
QUEUE_COLUMNS = ("ts", "queue", "messages", "ready", "unacked")
# Consumers of each pool's queue (= its workers) and the queue's ready + unacked messages as the
# autoscaler reads them (management API), sampled with the depths (orchestrator)
WORKERS = "workers.csv"
WORKER_COLUMNS = ("ts", "pool", "queue", "workers", "messages")
MACHINE = "machine.csv"  # CPU busy (whole machine, and Locust's share) and load, once a second
MACHINE_COLUMNS = ("ts", "cpu_percent", "locust_percent", "load1")
CAMPAIGN = "campaign.json"  # what happened to the mid-run campaign (Locust side, then settled)
RUN = "run.json"  # settings, machine, profile, timings and notes (orchestrator)
AUDIT = "audit.txt"  # `make audit`'s rendered verdict for the run
SUMMARY = "summary.json"  # the headline numbers (report)
REPORT = "report.html"

FINAL = ("paid", "rejected", "payment_failed", "cancelled", "refunded")


def epoch(rfc3339: str | None) -> float | None:
    return datetime.fromisoformat(rfc3339).timestamp() if rfc3339 else None


def order_row(order: dict[str, Any], kind: str) -> dict[str, Any]:
    """An order as the report keeps it. `final_ms` is measured on the server's clock, from
    acceptance (`created_at`) to the final status (`updated_at`), so it does not depend on how
    often anyone polled."""
    created, updated = epoch(order.get("created_at")), epoch(order.get("updated_at"))
    final = order["status"] in FINAL and created is not None and updated is not None
    return {
        "order_id": order["id"],
        "kind": kind,
        "status": order["status"],
        "reason": order.get("reason") or "",
        "created": f"{created:.3f}" if created is not None else "",
        "updated": f"{updated:.3f}" if updated is not None else "",
        "final_ms": f"{(updated - created) * 1000:.1f}" if final else "",
    }


class CsvAppender:
    """Append rows to a CSV in the run folder, writing the header once; line-buffered, so a
    crashed run still leaves everything up to its last line."""

    def __init__(self, path: Path, columns: tuple[str, ...]):
        fresh = not path.exists() or path.stat().st_size == 0
        self._file = path.open("a", newline="", buffering=1)
        self._writer = csv.writer(self._file)
        self._columns = columns
        if fresh:
            self._writer.writerow(columns)

    def row(self, *values: Any) -> None:
        self._writer.writerow(values)

    def dict_row(self, values: dict[str, Any]) -> None:
        self._writer.writerow([values.get(column, "") for column in self._columns])

    def close(self) -> None:
        self._file.close()


def write_csv(path: Path, columns: tuple[str, ...], rows: Iterable[dict[str, Any]]) -> None:
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def read_csv(path: Path) -> Iterator[dict[str, str]]:
    if not path.exists():
        return
    with path.open(newline="") as file:
        yield from csv.DictReader(file)


def read_json(path: Path, default: Any = None) -> Any:
    return json.loads(path.read_text()) if path.exists() else default


def write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, default=str) + "\n")
