"""Numbers from a run's raw files: per-route rates and percentiles over time, the summary
table, and the order outcomes. Pure functions over the journal files (numpy, no plotting)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.surge import journal

PEAK_WINDOW = 5.0  # seconds: the "peak requests/s" is the best 5-second average
FLOW = "FLOW"


@dataclass
class Series:
    """One route's (or custom event's) samples, times in seconds since the load started."""

    t: np.ndarray
    ms: np.ndarray
    failed: np.ndarray

    @classmethod
    def of(cls, rows: list[tuple[float, float, bool]]) -> Series:
        data = np.array(rows, dtype=float).reshape(-1, 3)
        return cls(data[:, 0], data[:, 1], data[:, 2].astype(bool))


@dataclass
class Samples:
    routes: dict[str, Series]
    flows: dict[str, Series]
    errors: Counter[tuple[str, str, str]] = field(default_factory=Counter)


def load_samples(folder: Path, t0: float) -> Samples:
    grouped: dict[tuple[bool, str], list[tuple[float, float, bool]]] = {}
    errors: Counter[tuple[str, str, str]] = Counter()
    for row in journal.read_csv(folder / journal.REQUESTS):
        failed = bool(row["error"])
        key = (row["type"] == FLOW, row["name"])
        grouped.setdefault(key, []).append((float(row["ts"]) - t0, float(row["ms"]), failed))
        if failed:
            errors[(row["name"], row["code"] or "-", row["error"])] += 1
    routes = {name: Series.of(rows) for (flow, name), rows in grouped.items() if not flow}
    flows = {name: Series.of(rows) for (flow, name), rows in grouped.items() if flow}
    return Samples(dict(sorted(routes.items())), dict(sorted(flows.items())), errors)


def per_second(t: np.ndarray, seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """Events per 1-second bin from 0 to `seconds`: (bin starts, counts)."""
    edges = np.arange(0.0, max(seconds, 1.0) + 1.0, 1.0)
    counts, _ = np.histogram(t, bins=edges)
    return edges[:-1], counts.astype(float)


def windowed_percentiles(
    t: np.ndarray, values: np.ndarray, seconds: float, window: float = 5.0
) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """p50/p95/p99 of `values` in consecutive windows; NaN where a window has no sample."""
    starts = np.arange(0.0, max(seconds, window), window)
    result: dict[int, np.ndarray] = {q: np.full(len(starts), np.nan) for q in (50, 95, 99)}
    for index, start in enumerate(starts):
        inside = values[(t >= start) & (t < start + window)]
        if inside.size:
            for q in result:
                result[q][index] = np.percentile(inside, q)
    return starts + window / 2, result


def percentiles(values: np.ndarray) -> dict[str, float | None]:
    if values.size == 0:
        return {"p50": None, "p95": None, "p99": None, "max": None}
    p50, p95, p99 = np.percentile(values, (50, 95, 99))
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99), "max": float(values.max())}


def route_summary(series: Series, seconds: float) -> dict[str, Any]:
    _, counts = per_second(series.t, seconds)
    window = int(PEAK_WINDOW)
    smoothed = (
        np.convolve(counts, np.ones(window) / window, mode="valid")
        if counts.size >= window
        else counts
    )
    return {
        "requests": int(series.t.size),
        "failures": int(series.failed.sum()),
        "failure %": round(100.0 * series.failed.mean(), 2) if series.t.size else 0.0,
        "mean req/s": round(series.t.size / max(seconds, 1.0), 1),
        "peak req/s": round(float(smoothed.max()), 1) if smoothed.size else 0.0,
        **{k: None if v is None else round(v, 1) for k, v in percentiles(series.ms).items()},
    }


def load_orders(folder: Path, t0: float) -> list[dict[str, Any]]:
    orders = []
    for row in journal.read_csv(folder / journal.ORDERS):
        created = float(row["created"]) - t0 if row["created"] else None
        final_ms = float(row["final_ms"]) if row["final_ms"] else None
        orders.append({**row, "t": created, "final_ms": final_ms})
    return orders


def order_summary(orders: list[dict[str, Any]]) -> dict[str, Any]:
    """Outcomes per kind of order, and accept-to-paid percentiles (server clock)."""
    outcomes: dict[str, Counter[str]] = {}
    for order in orders:
        label = order["status"] + (f" ({order['reason']})" if order["reason"] else "")
        outcomes.setdefault(order["kind"], Counter())[label] += 1
    paid_ms = np.array(
        [o["final_ms"] for o in orders if o["status"] == "paid" and o["final_ms"] is not None]
    )
    return {
        "accepted": len(orders),
        "outcomes": {
            kind: dict(counter.most_common()) for kind, counter in sorted(outcomes.items())
        },
        "accept-to-paid ms": {
            "orders": int(paid_ms.size),
            **{k: None if v is None else round(v, 1) for k, v in percentiles(paid_ms).items()},
        },
    }


def load_queues(folder: Path, t0: float) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    grouped: dict[str, list[tuple[float, float]]] = {}
    for row in journal.read_csv(folder / journal.QUEUES):
        if row["messages"] != "":
            grouped.setdefault(row["queue"], []).append(
                (float(row["ts"]) - t0, float(row["messages"]))
            )
    return {
        name: (np.array([p[0] for p in points]), np.array([p[1] for p in points]))
        for name, points in grouped.items()
    }


def load_workers(
    folder: Path, t0: float
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Per pool: (seconds since t0, workers), the consumers of its queue as sampled; and per
    queue: (seconds, ready + unacked messages) as the autoscaler reads them, where recorded."""
    workers: dict[str, list[tuple[float, float]]] = {}
    messages: dict[str, list[tuple[float, float]]] = {}
    for row in journal.read_csv(folder / journal.WORKERS):
        t = float(row["ts"]) - t0
        if row["workers"] != "":
            workers.setdefault(row["pool"], []).append((t, float(row["workers"])))
        if row.get("messages"):
            messages.setdefault(row["queue"], []).append((t, float(row["messages"])))
    return _arrays(workers), _arrays(messages)


def _arrays(
    grouped: dict[str, list[tuple[float, float]]],
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {
        name: (np.array([p[0] for p in points]), np.array([p[1] for p in points]))
        for name, points in grouped.items()
    }


def load_users(folder: Path, t0: float) -> tuple[np.ndarray, np.ndarray]:
    rows = [
        (float(r["ts"]) - t0, float(r["users"])) for r in journal.read_csv(folder / journal.USERS)
    ]
    data = np.array(rows, dtype=float).reshape(-1, 2)
    return data[:, 0], data[:, 1]


def load_machine(folder: Path, t0: float) -> dict[str, np.ndarray]:
    """CPU busy % (machine, Locust's share) and the 1-minute load average over time."""
    rows = [
        (
            float(r["ts"]) - t0,
            float(r["cpu_percent"]),
            float(r["locust_percent"]),
            float(r["load1"]),
        )
        for r in journal.read_csv(folder / journal.MACHINE)
    ]
    data = np.array(rows, dtype=float).reshape(-1, 4)
    return {"t": data[:, 0], "cpu": data[:, 1], "locust": data[:, 2], "load": data[:, 3]}


def machine_summary(usage: dict[str, np.ndarray], seconds: float) -> dict[str, float | None]:
    during = usage["t"] < seconds
    if not during.any():
        return {"CPU busy % (mean)": None, "Locust's share %": None, "load average (max)": None}
    return {
        "CPU busy % (mean)": round(float(usage["cpu"][during].mean()), 1),
        "Locust's share %": round(float(usage["locust"][during].mean()), 1),
        "load average (max)": round(float(usage["load"][during].max()), 2),
    }


def stage_summary(
    samples: Samples,
    orders: list[dict[str, Any]],
    usage: dict[str, np.ndarray],
    stages: list[dict[str, Any]],
    checkout: str,
) -> list[dict[str, Any]]:
    """What each stage of the profile did: the surge's effect, next to the baseline's."""
    every = np.concatenate([series.t for series in samples.routes.values()] or [np.array([])])
    paid = np.array(
        [(o["t"], o["final_ms"]) for o in orders if o["status"] == "paid" and o["t"] is not None]
    ).reshape(-1, 2)
    empty = Series.of([])
    rows, start = [], 0.0
    for stage in stages:
        end = float(stage["until"])
        route = samples.routes.get(checkout, empty)
        inside = (route.t >= start) & (route.t < end)
        accepted = (paid[:, 0] >= start) & (paid[:, 0] < end)
        busy = (usage["t"] >= start) & (usage["t"] < end)
        rows.append(
            {
                "stage": f"{stage['label']} ({start:.0f}-{end:.0f} s, {stage['users']} users)",
                "req/s": round(float(((every >= start) & (every < end)).sum()) / (end - start), 1),
                "checkout p50/p95/p99 ms": _triple(route.ms[inside]),
                "accept-to-paid p50/p95/p99 ms": _triple(paid[accepted, 1]),
                "CPU busy %": round(float(usage["cpu"][busy].mean()), 1) if busy.any() else None,
            }
        )
        start = end
    return rows


def _triple(values: np.ndarray) -> str:
    if values.size == 0:
        return "-"
    return " / ".join(f"{v:.0f}" for v in np.percentile(values, (50, 95, 99)))
