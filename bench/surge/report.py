"""The surge report: `report.html` with its PNGs and `summary.json`, from a run folder.

`python -m bench.surge.report var/surge/<run>` renders an existing run again (the orchestrator
calls `render` at the end of every run)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from bench.surge import journal, page, plots, stats

CHECKOUT = "POST /v1/orders"


def render(folder: Path) -> Path:
    run = journal.read_json(folder / journal.RUN, {})
    t0 = load_start(folder, run)
    seconds = float(run.get("profile", {}).get("duration", 0)) or 60.0
    samples = stats.load_samples(folder, t0)
    orders = stats.load_orders(folder, t0)
    depths = stats.load_queues(folder, t0)
    workers, counted = stats.load_workers(folder, t0)
    campaign = journal.read_json(folder / journal.CAMPAIGN, {})
    audit = (folder / journal.AUDIT).read_text() if (folder / journal.AUDIT).exists() else ""
    spans, marks = timeline(run, campaign, t0)
    usage = stats.load_machine(folder, t0)
    images = {
        "Requests per second": plots.throughput(
            samples, stats.load_users(folder, t0), seconds, spans, marks, folder / "throughput.png"
        ),
        "Latency per route": plots.latency(samples, seconds, spans, marks, folder / "latency.png"),
        "Accept-to-paid": plots.accept_to_paid(
            orders, seconds, spans, marks, folder / "accept_to_paid.png"
        ),
        "Queue depths": plots.queues(
            depths, seconds, spans, marks, run.get("queue source", "?"), folder / "queues.png"
        ),
        "Workers per pool": plots.scaling(
            workers, {**depths, **counted}, orders, seconds, spans, marks, folder / "scaling.png"
        ),
        "Errors": plots.errors(samples, seconds, spans, marks, folder / "errors.png"),
        "The machine": plots.machine(usage, seconds, spans, marks, folder / "machine.png"),
    }
    summary = summarize(samples, orders, depths, campaign, audit, run, seconds)
    summary["workers per pool"] = {
        pool: {"min": int(count.min()), "max": int(count.max())}
        for pool, (_, count) in sorted(workers.items())
        if count.size
    }
    summary["machine during the load"] = stats.machine_summary(usage, seconds)
    stages = run.get("profile", {}).get("stages", [])
    summary["stages"] = stats.stage_summary(samples, orders, usage, stages, CHECKOUT)
    journal.write_json(folder / journal.SUMMARY, summary)
    (folder / journal.REPORT).write_text(page.render(run, summary, samples, images, audit))
    return folder / journal.REPORT


def load_start(folder: Path, run: dict[str, Any]) -> float:
    """When Locust started the load: its first user-count sample, else what the run noted."""
    for row in journal.read_csv(folder / journal.USERS):
        return float(row["ts"])
    return float(run.get("load started", 0.0))


def timeline(
    run: dict[str, Any], campaign: dict[str, Any], t0: float
) -> tuple[plots.Spans, plots.Marks]:
    """The profile's stages (shaded) and the moments worth a line: stage changes, campaign."""
    spans: plots.Spans = []
    marks: plots.Marks = []
    start = 0.0
    for stage in run.get("profile", {}).get("stages", []):
        spans.append((start, stage["until"], stage["label"]))
        if start > 0:
            marks.append((start, f"{stage['label']}: {stage['users']} users"))
        start = stage["until"]
    if "launched_at" in campaign:
        marks.append((float(campaign["launched_at"]) - t0, "campaign"))
    return spans, marks


def summarize(
    samples: stats.Samples,
    orders: list[dict[str, Any]],
    depths: dict[str, tuple[np.ndarray, np.ndarray]],
    campaign: dict[str, Any],
    audit: str,
    run: dict[str, Any],
    seconds: float,
) -> dict[str, Any]:
    """The headline numbers, also written as summary.json for tools and docs."""
    routes = {name: stats.route_summary(series, seconds) for name, series in samples.routes.items()}
    flows = {name: stats.route_summary(series, seconds) for name, series in samples.flows.items()}
    every = np.concatenate([series.t for series in samples.routes.values()] or [np.array([])])
    total = stats.route_summary(stats.Series.of([(t, 0.0, False) for t in every]), seconds)
    verdict = audit.strip().splitlines()[-1] if audit.strip() else "verdict: audit not run"
    return {
        "run": run.get("run id"),
        "requests": total["requests"],
        "mean req/s": total["mean req/s"],
        "peak req/s (5 s)": total["peak req/s"],
        "checkout": routes.get(CHECKOUT, {}),
        "orders": stats.order_summary(orders),
        "routes": routes,
        "flows": flows,
        "failed requests": sum(samples.errors.values()),
        "queues max depth": {
            name: float(depth.max()) if depth.size else 0.0 for name, (_, depth) in depths.items()
        },
        "campaign": campaign,
        "audit": verdict.removeprefix("verdict: "),
        "audit ok": "all invariants hold" in verdict,
        "settle": run.get("settle", {}),
    }


if __name__ == "__main__":
    print(render(Path(sys.argv[1])))
