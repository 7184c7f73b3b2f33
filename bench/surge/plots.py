"""The report's PNGs (matplotlib, Agg: no display needed). Every plot shares the time axis
(seconds since the load started) and shades the profile's stages, so a queue that grows
during the surge lines up with the latency that follows it."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after choosing the backend
import numpy as np

from bench.surge.stats import Samples, per_second, windowed_percentiles
from workers.pools import POOLS, Pool

MIN_SAMPLES = 10  # a route with fewer requests gets no latency panel (the table has it)
Marks = list[tuple[float, str]]  # moments to draw as vertical lines (surge, campaign, end)
Spans = list[tuple[float, float, str]]  # stages to shade


def _frame(ax: plt.Axes, spans: Spans, marks: Marks, seconds: float) -> None:
    for index, (start, end, _) in enumerate(spans):
        ax.axvspan(start, end, color="0.92" if index % 2 else "0.97", zorder=0)
    for t, label in marks:
        ax.axvline(t, color="0.4", linestyle=":", linewidth=1)
        ax.annotate(
            label,
            (t, 1.0),
            xycoords=("data", "axes fraction"),
            fontsize=7,
            rotation=90,
            va="top",
            ha="right",
            color="0.3",
        )
    ax.set_xlim(0, seconds)
    ax.grid(True, alpha=0.3)


def _save(fig: plt.Figure, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path.name


def throughput(
    samples: Samples,
    users: tuple[np.ndarray, np.ndarray],
    seconds: float,
    spans: Spans,
    marks: Marks,
    path: Path,
) -> str:
    fig, ax = plt.subplots(figsize=(11, 4.5))
    _frame(ax, spans, marks, seconds)
    for name, series in samples.routes.items():
        starts, counts = per_second(series.t, seconds)
        ax.plot(starts, counts, label=name, linewidth=1.2)
    if samples.routes:
        every = np.concatenate([series.t for series in samples.routes.values()])
        starts, counts = per_second(every, seconds)
        ax.plot(starts, counts, label="all routes", color="0.2", linewidth=2.2, alpha=0.8)
    ax.set_ylabel("requests/s (1 s bins)")
    ax.set_xlabel("seconds since the load started")
    if users[0].size:
        twin = ax.twinx()
        twin.step(users[0], users[1], where="post", color="black", linestyle="--", linewidth=1)
        twin.set_ylabel("users")
        twin.set_ylim(0, max(users[1].max() * 1.1, 1))
    if samples.routes:
        ax.legend(fontsize=7, loc="upper left", ncols=2)
    ax.set_title("Requests per second per route (dashed, right axis: running users)")
    return _save(fig, path)


def latency(samples: Samples, seconds: float, spans: Spans, marks: Marks, path: Path) -> str:
    """One panel per route that has enough requests to have percentiles (not the one-off
    campaign launch)."""
    busy = [(name, s) for name, s in samples.routes.items() if s.t.size >= MIN_SAMPLES]
    routes = busy or [("no requests", None)]
    columns = 2
    rows = math.ceil(len(routes) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(11, 2.8 * rows), squeeze=False, sharex=True)
    for ax, (name, series) in zip(axes.flat, routes, strict=False):
        _frame(ax, spans, marks, seconds)
        ax.set_title(name, fontsize=9)
        ax.set_ylabel("ms")
        if series is None:
            continue
        centers, quantiles = windowed_percentiles(series.t, series.ms, seconds)
        for q, style in ((50, "-"), (95, "--"), (99, ":")):
            ax.plot(centers, quantiles[q], style, marker=".", markersize=3, label=f"p{q}")
        ax.legend(fontsize=7, loc="upper left")
    for ax in list(axes.flat)[len(routes) :]:
        ax.set_visible(False)
    fig.suptitle("Latency per route: p50 / p95 / p99 over 5 s windows", fontsize=11)
    return _save(fig, path)


def accept_to_paid(
    orders: list[dict], seconds: float, spans: Spans, marks: Marks, path: Path
) -> str:
    fig, ax = plt.subplots(figsize=(11, 4))
    _frame(ax, spans, marks, seconds)
    paid = [
        (o["t"], o["final_ms"])
        for o in orders
        if o["status"] == "paid" and o["final_ms"] is not None
    ]
    if paid:
        t, ms = np.array(paid).T
        ax.scatter(t, ms, s=4, alpha=0.35, color="tab:blue", label="one paid order")
        centers, quantiles = windowed_percentiles(t, ms, seconds)
        ax.plot(centers, quantiles[50], color="tab:green", label="p50 (5 s windows)")
        ax.plot(centers, quantiles[95], color="tab:red", label="p95")
        if ms.max() > 10 * max(float(np.median(ms)), 1.0):
            ax.set_yscale("log")  # a few slow orders would flatten everyone else
        ax.legend(fontsize=8, loc="upper left")
    else:
        ax.text(0.5, 0.5, "no paid orders", transform=ax.transAxes, ha="center")
    ax.set_ylabel("accept -> paid, ms (server clock)")
    ax.set_xlabel("accepted at, seconds since the load started")
    ax.set_title("Accept-to-paid latency of every paid order")
    return _save(fig, path)


def queues(
    depths: dict[str, tuple[np.ndarray, np.ndarray]],
    seconds: float,
    spans: Spans,
    marks: Marks,
    source: str,
    path: Path,
) -> str:
    fig, ax = plt.subplots(figsize=(11, 4))
    end = max([seconds] + [float(t.max()) for t, _ in depths.values() if t.size])
    _frame(ax, spans, marks, end)
    for name, (t, depth) in sorted(depths.items()):
        ax.plot(t, depth, "--" if name.endswith(".dlq") else "-", label=name, linewidth=1.3)
    if not depths:
        ax.text(0.5, 0.5, "no queue samples", transform=ax.transAxes, ha="center")
    else:
        ax.legend(fontsize=7, loc="upper left", ncols=2)
    ax.set_ylabel("messages")
    ax.set_xlabel("seconds since the load started (includes settling)")
    ax.set_title(f"Queue depths ({source})")
    return _save(fig, path)


def errors(samples: Samples, seconds: float, spans: Spans, marks: Marks, path: Path) -> str:
    fig, ax = plt.subplots(figsize=(11, 3.5))
    _frame(ax, spans, marks, seconds)
    failing = {name: s for name, s in {**samples.routes, **samples.flows}.items() if s.failed.any()}
    for name, series in failing.items():
        starts, counts = per_second(series.t[series.failed], seconds)
        ax.plot(starts, counts, label=name, linewidth=1.2)
    if failing:
        ax.legend(fontsize=7, loc="upper left")
    else:
        ax.text(0.5, 0.5, "no errors", transform=ax.transAxes, ha="center", fontsize=14)
    ax.set_ylabel("failures/s")
    ax.set_xlabel("seconds since the load started")
    ax.set_title("Errors per second (failed requests, shed checkouts, orders never final)")
    return _save(fig, path)


def machine(
    usage: dict[str, np.ndarray], seconds: float, spans: Spans, marks: Marks, path: Path
) -> str:
    fig, ax = plt.subplots(figsize=(11, 3.5))
    end = max(seconds, float(usage["t"].max()) if usage["t"].size else 0.0)
    _frame(ax, spans, marks, end)
    if usage["t"].size:
        ax.plot(usage["t"], usage["cpu"], label="machine CPU busy, % of all cores", color="tab:red")
        ax.plot(
            usage["t"],
            usage["locust"],
            label="of which Locust (the load generator)",
            color="tab:gray",
        )
        twin = ax.twinx()
        twin.plot(usage["t"], usage["load"], ":", color="black", label="load average (1 min)")
        twin.set_ylabel("load average")
        twin.set_ylim(0, max(float(usage["load"].max()) * 1.1, 1.0))
        ax.legend(fontsize=7, loc="upper left")
    ax.set_ylim(0, 105)
    ax.set_ylabel("% CPU")
    ax.set_xlabel("seconds since the load started (includes settling)")
    ax.set_title("The machine: CPU busy and load average (dotted, right axis)")
    return _save(fig, path)


def scaling(
    workers: dict[str, tuple[np.ndarray, np.ndarray]],
    depths: dict[str, tuple[np.ndarray, np.ndarray]],
    orders: list[dict],
    seconds: float,
    spans: Spans,
    marks: Marks,
    path: Path,
) -> str:
    """Workers per pool over time beside its queue's depth (ready + unacked as the autoscaler
    reads them, where recorded), under the payments accept->paid p95: does payments scale out
    before its p95 moves, and back in after the surge?"""
    pools = [str(pool) for pool in Pool]
    fig, axes = plt.subplots(
        len(pools) + 1, 1, figsize=(11, 2.3 * (len(pools) + 1)), sharex=True, squeeze=False
    )
    ends = [float(t.max()) for t, _ in [*workers.values(), *depths.values()] if t.size]
    end = max([seconds, *ends])
    top = axes[0][0]
    _frame(top, spans, marks, end)
    paid = [
        (o["t"], o["final_ms"])
        for o in orders
        if o["status"] == "paid" and o["final_ms"] is not None and o["t"] is not None
    ]
    if paid:
        t, ms = np.array(paid).T
        centers, quantiles = windowed_percentiles(t, ms, end)
        top.plot(centers, quantiles[95], color="tab:red", marker=".", label="p95 (5 s windows)")
        top.plot(centers, quantiles[50], color="tab:green", linewidth=1, label="p50")
        top.legend(fontsize=7, loc="upper left")
    else:
        top.text(0.5, 0.5, "no paid orders", transform=top.transAxes, ha="center")
    top.set_ylabel("ms")
    top.set_title("Payments: accept -> paid (by acceptance time)", fontsize=9)
    for ax, pool in zip((row[0] for row in axes[1:]), pools, strict=True):
        queue = str(POOLS[Pool(pool)].queue)
        _frame(ax, spans, marks, end)
        if queue in depths:
            t, depth = depths[queue]
            ax.plot(t, depth, color="tab:blue", linewidth=1.2, label=f"{queue} depth")
        ax.set_ylabel("messages", color="tab:blue")
        twin = ax.twinx()
        if pool in workers:
            t, count = workers[pool]
            twin.step(t, count, where="post", color="tab:orange", linewidth=2, label="workers")
            twin.set_ylim(0, max(float(count.max()) + 1, 2))
        else:
            twin.text(0.5, 0.5, "no worker samples", transform=ax.transAxes, ha="center")
        twin.set_ylabel("workers", color="tab:orange")
        twin.yaxis.get_major_locator().set_params(integer=True)
        ax.set_title(f"{pool} pool: workers (orange, right) and {queue} depth (blue)", fontsize=9)
    axes[-1][0].set_xlabel("seconds since the load started (includes settling)")
    return _save(fig, path)
