"""The report's HTML: one self-contained page next to its PNGs (no scripts, no CDN)."""

from __future__ import annotations

import html
from typing import Any

from bench.surge import stats

COLUMNS = ["requests", "failures", "failure %", "mean req/s", "peak req/s"]
COLUMNS += ["p50", "p95", "p99", "max"]
NONE = "-"
STAGE_COLUMNS = ["stage", "req/s", "checkout p50/p95/p99 ms", "accept-to-paid p50/p95/p99 ms"]
STAGE_COLUMNS += ["CPU busy %"]
CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
td:first-child, th:first-child { text-align: left; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; font-size: 0.85em; }
img { max-width: 100%; border: 1px solid #eee; }
.ok { color: #116611; font-weight: bold; } .fail { color: #aa1111; font-weight: bold; }
"""


def render(
    run: dict[str, Any],
    summary: dict[str, Any],
    samples: stats.Samples,
    images: dict[str, str],
    audit: str,
) -> str:
    verdict_class = "ok" if summary["audit ok"] else "fail"
    parts = [
        f"<h1>Doorbuster surge {esc(run.get('run id', ''))}</h1>",
        f"<p class='{verdict_class}'>Audit: {esc(summary['audit'])}</p>",
        "<h2>Headline</h2>",
        pairs(headline(summary)),
        "<h2>Per stage of the profile</h2>",
        table(
            STAGE_COLUMNS, [[row[c] for c in STAGE_COLUMNS] for row in summary.get("stages", [])]
        ),
        "<h2>Per route</h2><p>Latencies in ms over the whole run; peak: best 5-second average.</p>",
        table(["route", *COLUMNS], metric_rows(summary["routes"])),
        *orders_section(summary),
        *[
            f"<h2>{esc(title)}</h2><img src='{name}' alt='{esc(title)}'>"
            for title, name in images.items()
        ],
        *errors_section(samples),
        "<h2>Queues</h2>",
        table(["queue", "max depth"], [[q, d] for q, d in summary["queues max depth"].items()]),
        "<h2>Audit: <code>make audit</code> over the run's orders</h2>",
        f"<pre>{esc(audit or 'not run')}</pre>",
        "<h2>Settings</h2>",
        pairs(settings_rows(run.get("settings", {}), run.get("profile", {}))),
        "<h2>Machine</h2>",
        pairs(run.get("machine", {})),
        "<h2>Notes</h2>",
        "<ul>" + "".join(f"<li>{esc(note)}</li>" for note in run.get("notes", [])) + "</ul>",
        "<p>Raw data next to this page: requests.csv, orders.csv, queues.csv, users.csv, "
        "run.json, summary.json; Locust's own report: <a href='locust.html'>locust.html</a>.</p>",
    ]
    head = f"<meta charset='utf-8'><title>Doorbuster surge</title><style>{CSS}</style>"
    return f"<!doctype html><html><head>{head}</head><body>{''.join(parts)}</body></html>\n"


def headline(summary: dict[str, Any]) -> dict[str, Any]:
    checkout, orders = summary["checkout"], summary["orders"]
    paid = orders["accept-to-paid ms"]
    return {
        "requests/s, mean over the load": summary["mean req/s"],
        "requests/s, best 5 s": summary["peak req/s (5 s)"],
        "checkout p50 / p95 / p99 ms": triple(checkout),
        "orders accepted": orders["accepted"],
        "paid orders": paid["orders"],
        "accept-to-paid p50 / p95 / p99 ms": triple(paid),
        "failed requests": summary["failed requests"],
        "machine during the load": ", ".join(
            f"{key}: {NONE if value is None else value}"
            for key, value in summary.get("machine during the load", {}).items()
        ),
        "campaign": campaign_line(summary["campaign"]),
        "settling": ", ".join(f"{key}: {value}" for key, value in summary["settle"].items()),
        "audit": summary["audit"],
    }


def orders_section(summary: dict[str, Any]) -> list[str]:
    outcomes = summary["orders"]["outcomes"]
    rows = [[kind, status, n] for kind, counts in outcomes.items() for status, n in counts.items()]
    return [
        "<h2>Orders</h2><p>Every order the run placed, after settling; <i>flash</i> orders are "
        "for the flash-sale sku. Accept-to-paid is measured on the server's clock (created_at "
        "to updated_at), so it does not depend on how often anyone polled.</p>",
        table(["kind", "final status", "orders"], rows),
        "<h3>Followed by the shoppers (Locust custom events, ms)</h3>",
        table(["event", *COLUMNS], metric_rows(summary["flows"])),
    ]


def errors_section(samples: stats.Samples) -> list[str]:
    rows = [[*key, n] for key, n in samples.errors.most_common(20)]
    if not rows:
        return ["<h3>Failed requests</h3><p>None.</p>"]
    return ["<h3>Failed requests (top 20)</h3>", table(["route", "HTTP", "error", "count"], rows)]


def metric_rows(metrics: dict[str, dict[str, Any]]) -> list[list[Any]]:
    return [[name, *[values.get(column) for column in COLUMNS]] for name, values in metrics.items()]


def triple(values: dict[str, Any]) -> str:
    return " / ".join(
        NONE if values.get(k) is None else f"{values[k]:.0f}" for k in ("p50", "p95", "p99")
    )


def campaign_line(campaign: dict[str, Any]) -> str:
    if not campaign:
        return "not launched (did the run reach its midpoint?)"
    if "note" in campaign:
        return str(campaign["note"])
    progress = campaign.get("progress", {})
    return (
        f"{campaign.get('id')}: {campaign.get('total')} addresses; at the end "
        f"{progress.get('status', '?')}, sent {progress.get('sent', '?')}, "
        f"failed {progress.get('failed', '?')}"
    )


def settings_rows(settings: dict[str, Any], profile: dict[str, Any]) -> dict[str, Any]:
    stages = "; ".join(
        f"{s['label']} until {s['until']} s: {s['users']} users (spawn {s['spawn_rate']}/s)"
        for s in profile.get("stages", [])
    )
    return {**settings, "profile stages": stages}


def table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def pairs(values: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{esc(key)}</td><td>{cell(value)}</td></tr>" for key, value in values.items()
    )
    return f"<table>{rows}</table>"


def cell(value: Any) -> str:
    if value is None:
        return NONE
    if isinstance(value, bool):
        return esc(str(value))
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return esc(str(value))


def esc(value: Any) -> str:
    return html.escape(str(value))
