"""A bounded number of deliveries per task on classic queues, for a message that kills its
worker process every time it runs (quorum queues have `x-delivery-limit`; classic queues only
flag a message `redelivered`).

Only a redelivered message pays anything (the common path reads one flag):
- redelivered messages run one at a time in a worker process (`SUSPECTS`), so that the
  messages a crash killed beside the guilty one (with a threads pool, everything in flight)
  are not charged for its deaths: while the guilty one runs, they wait instead of running;
- right before a redelivered message runs, its count here goes up by one; at
  `TASK_DELIVERY_LIMIT` it is dead-lettered instead (`delivery_limit`), so it ran at most that
  many times.

The counts live in a small SQLite file per pool on the worker's disk (`DELIVERY_COUNTS_DIR`,
default the temporary directory: an emptyDir on Kubernetes, which outlives a container
restart), not in the message: re-publishing a redelivered message with a count header would
be a publish on the consumer's path, which a broker alarm blocks. A worker counts what it ran:
with several workers a crash loop is bounded by workers x limit deliveries. Entries older than
a week are dropped.
"""

from __future__ import annotations

import contextlib
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

SUSPECTS = threading.Lock()
_KEEP_SECONDS = 7 * 24 * 3600


class DeliveryCounts:
    def __init__(self, path: Path):
        self.path = path
        self._ready = False

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        connection = sqlite3.connect(self.path, timeout=5, isolation_level=None)
        try:
            if not self._ready:
                connection.execute(
                    "CREATE TABLE IF NOT EXISTS deliveries (task_id TEXT PRIMARY KEY,"
                    " runs INTEGER NOT NULL, seen REAL NOT NULL)"
                )
                connection.execute(
                    "DELETE FROM deliveries WHERE seen < ?", (time.time() - _KEEP_SECONDS,)
                )
                self._ready = True
            yield connection
        finally:
            connection.close()

    def count(self, task_id: str) -> int:
        """One more redelivered run of `task_id`; returns how many there were."""
        with self._db() as db:
            (runs,) = db.execute(
                "INSERT INTO deliveries VALUES (?, 1, ?) ON CONFLICT (task_id)"
                " DO UPDATE SET runs = runs + 1, seen = excluded.seen RETURNING runs",
                (task_id, time.time()),
            ).fetchone()
        return int(runs)

    def forgive(self, task_id: str) -> None:
        """Take back one run: the worker itself put the message back (not a crash)."""
        with self._db() as db:
            db.execute(
                "UPDATE deliveries SET runs = max(runs - 1, 0) WHERE task_id = ?", (task_id,)
            )


_counts: dict[str, DeliveryCounts] = {}


def delivery_counts(app_name: str, folder: str | None) -> DeliveryCounts:
    """The counts of one pool (its Celery app's name) in `folder` (default: the temp dir)."""
    path = Path(folder or tempfile.gettempdir()) / f"{app_name}-deliveries.sqlite"
    key = str(path)
    if key not in _counts:
        path.parent.mkdir(parents=True, exist_ok=True)
        _counts[key] = DeliveryCounts(path)
    return _counts[key]
