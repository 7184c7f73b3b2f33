"""The surge report, rendered from a fake run folder (no stack, no Locust)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.surge import journal, report, stats
from ops.audit import Verdict
from ops.audit import render as render_audit

T0 = 1_800_000_000.0
PNG = b"\x89PNG\r\n\x1a\n"
STAGES = [
    {"label": "baseline", "until": 18.0, "users": 2, "spawn_rate": 2.0},
    {"label": "surge + hold", "until": 45.0, "users": 20, "spawn_rate": 2.0},
    {"label": "fall back", "until": 60.0, "users": 2, "spawn_rate": 2.0},
]


def write_rows(path: Path, columns: tuple[str, ...], rows: list[tuple]) -> None:
    journal.write_csv(path, columns, [dict(zip(columns, row, strict=True)) for row in rows])


def fake_run(folder: Path, audit_ok: bool = True) -> None:
    """60 s of load: products at 10/s (10 ms, then 50 ms from 20 s), checkouts at 2/s (20 ms)
    with five 503s at 40 s, 100 orders, a growing payments queue, campaigns not available."""
    users = [(T0 + s, 2 if s < 18 or s >= 45 else 20) for s in range(60)]
    requests = [
        (T0 + s + i / 10, "GET", "GET /v1/products/{sku}", 10 if s < 20 else 50, 200, "")
        for s in range(60)
        for i in range(10)
    ]
    requests += [
        (T0 + s + i / 2, "POST", "POST /v1/orders", 20, 202, "")
        for s in range(60)
        for i in range(2)
    ]
    requests += [(T0 + 40.5, "POST", "POST /v1/orders", 3, 503, "HTTP 503")] * 5
    requests += [(T0 + s, "FLOW", "accept-to-paid", 300, "", "") for s in range(60)]
    orders = [
        (f"o{i}", "catalog", "paid", "", T0 + i / 2, T0 + i / 2 + 0.3, 300.0) for i in range(90)
    ]
    orders += [(f"f{i}", "flash", "paid", "", T0 + 20, T0 + 20.4, 400.0) for i in range(3)]
    orders += [
        (f"r{i}", "flash", "rejected", "out_of_stock", T0 + 21, T0 + 21.1, 100.0) for i in range(7)
    ]
    queues = [(T0 + s, "payments", s * 3, s * 3, 0) for s in range(70)]
    queues += [(T0 + s, "payments.dlq", 0, 0, 0) for s in range(70)]
    write_rows(folder / journal.USERS, journal.USER_COLUMNS, users)
    write_rows(folder / journal.REQUESTS, journal.REQUEST_COLUMNS, requests)
    write_rows(folder / journal.ORDERS, journal.ORDER_COLUMNS, orders)
    write_rows(folder / journal.QUEUES, journal.QUEUE_COLUMNS, queues)
    machine = [(T0 + s, 50 + s / 2, 10, 1.5) for s in range(70)]
    write_rows(folder / journal.MACHINE, journal.MACHINE_COLUMNS, machine)
    journal.write_json(
        folder / journal.CAMPAIGN,
        {"http": 404, "launched_at": T0 + 30, "note": "campaigns not available (HTTP 404)"},
    )
    verdicts = [Verdict("1. every accepted order reaches a final status", checked=100)]
    if not audit_ok:
        verdicts.append(
            Verdict("2. at most one charge", checked=100, violations=["o1 charged 2 times"])
        )
    (folder / journal.AUDIT).write_text(render_audit(verdicts) + "\n")
    journal.write_json(
        folder / journal.RUN,
        {
            "run id": "fake",
            "profile": {"name": "step", "duration": 60.0, "stages": STAGES},
            "settings": {"users at the peak": 20, "orders API": "http://127.0.0.1:8001"},
            "machine": {"cores (nproc)": 2, "python": "CPython 3.11.7"},
            "notes": ["a note"],
            "queue source": "management API: 70 samples",
            "settle": {"orders accepted": 100, "orders still open": 0},
        },
    )


def test_the_report_has_its_plots_tables_and_verdict(tmp_path):
    fake_run(tmp_path)

    page = report.render(tmp_path).read_text()

    for image in ("throughput", "latency", "accept_to_paid", "queues", "errors", "machine"):
        assert (tmp_path / f"{image}.png").read_bytes().startswith(PNG)
        assert f"src='{image}.png'" in page
    assert "<p class='ok'>Audit: all invariants hold</p>" in page
    assert "campaigns not available (HTTP 404)" in page
    assert "out_of_stock" in page and "cores (nproc)" in page and "a note" in page
    assert "baseline until 18.0 s: 2 users" in page
    assert "surge + hold (18-45 s, 20 users)" in page


def test_the_summary_numbers(tmp_path):
    fake_run(tmp_path)
    report.render(tmp_path)

    summary = json.loads((tmp_path / journal.SUMMARY).read_text())

    checkout = summary["checkout"]
    assert (checkout["requests"], checkout["failures"], checkout["p50"]) == (125, 5, 20.0)
    assert summary["requests"] == 600 + 125
    assert summary["failed requests"] == 5
    products = summary["routes"]["GET /v1/products/{sku}"]
    assert (products["mean req/s"], products["peak req/s"]) == (10.0, 10.0)
    assert (products["p50"], products["max"]) == (50.0, 50.0)
    paid = summary["orders"]["accept-to-paid ms"]
    assert (paid["orders"], paid["p50"], paid["max"]) == (93, 300.0, 400.0)
    assert summary["orders"]["outcomes"]["flash"] == {"rejected (out_of_stock)": 7, "paid": 3}
    assert summary["queues max depth"]["payments"] == 207.0
    assert summary["audit ok"] is True
    machine = summary["machine during the load"]
    assert machine == {
        "CPU busy % (mean)": 64.8,
        "Locust's share %": 10.0,
        "load average (max)": 1.5,
    }
    baseline, surge, fall_back = summary["stages"]
    assert baseline["req/s"] == 12.0  # 10 product views and 2 checkouts a second
    assert baseline["checkout p50/p95/p99 ms"] == "20 / 20 / 20"
    assert surge["checkout p50/p95/p99 ms"] == "20 / 20 / 20"  # five 3 ms 503s among 59
    assert surge["CPU busy %"] == 65.5  # 50 + s/2 over s in 18..44
    assert fall_back["accept-to-paid p50/p95/p99 ms"] == "-"  # no order accepted after 45 s


def test_a_violated_invariant_shows_as_failed(tmp_path):
    fake_run(tmp_path, audit_ok=False)

    page = report.render(tmp_path).read_text()

    assert "<p class='fail'>Audit: 1 invariant(s) violated</p>" in page
    assert "o1 charged 2 times" in page
    assert json.loads((tmp_path / journal.SUMMARY).read_text())["audit ok"] is False


def test_an_empty_run_still_renders(tmp_path):
    journal.write_json(tmp_path / journal.RUN, {"run id": "empty"})

    page = report.render(tmp_path).read_text()

    assert "audit not run" in page
    assert (tmp_path / "throughput.png").exists()


def test_rates_per_second_and_windowed_percentiles():
    t = np.array([0.1, 0.2, 0.9, 1.5, 4.2])
    starts, counts = stats.per_second(t, 5)
    assert list(starts) == [0, 1, 2, 3, 4] and list(counts) == [3, 1, 0, 0, 1]

    centers, quantiles = stats.windowed_percentiles(t, np.array([1, 2, 3, 4, 100.0]), 10, 5)
    assert list(centers) == [2.5, 7.5]
    assert quantiles[50][0] == 3.0 and np.isnan(quantiles[50][1])


def test_an_order_row_measures_accept_to_final_on_the_server_clock():
    order = {
        "id": "ord_1",
        "status": "paid",
        "reason": None,
        "created_at": "2026-11-25T05:00:00.000000Z",
        "updated_at": "2026-11-25T05:00:00.450000Z",
    }

    row = journal.order_row(order, "catalog")

    assert (row["final_ms"], row["kind"], row["reason"]) == ("450.0", "catalog", "")
    assert journal.order_row({**order, "status": "reserved"}, "flash")["final_ms"] == ""


@pytest.mark.parametrize(
    ("url", "vhost"),
    [
        ("amqp://guest:guest@127.0.0.1:5672//", "/"),
        ("amqp://guest:guest@127.0.0.1:5672/", "/"),
        ("amqp://guest:guest@127.0.0.1:5672", "/"),
        ("amqp://guest:guest@127.0.0.1:5672/doorbuster-surge", "doorbuster-surge"),
        ("amqp://h:5672/%2Fodd", "/odd"),
    ],
)
def test_the_vhost_whose_queues_are_sampled(url, vhost):
    from bench.surge.depths import vhost_of

    assert vhost_of(url) == vhost


def test_the_orchestrator_and_the_report_never_import_gevent():
    """Locust patches a process with gevent; only the Locust subprocess may import it."""
    code = (
        "import sys, bench.surge.__main__, bench.surge.report, bench.surge.profile; "
        "sys.exit('gevent' in sys.modules or 'locust' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_the_report_plots_workers_per_pool_beside_depth_and_payments_p95(tmp_path):
    fake_run(tmp_path)
    # payments scales out from 2 to 5 workers at 20 s and back to 2 at 50 s; orders stays at 1
    # (no management API numbers for its queue: the plot falls back to the sampled depths).
    workers = [
        (T0 + s, "payments", "payments", 5 if 20 <= s < 50 else 2, 100 if 15 <= s < 40 else 3)
        for s in range(70)
    ] + [(T0 + s, "orders", "orders", 1, "") for s in range(70)]
    write_rows(tmp_path / journal.WORKERS, journal.WORKER_COLUMNS, workers)

    page = report.render(tmp_path).read_text()

    assert (tmp_path / "scaling.png").read_bytes().startswith(PNG)
    assert "src='scaling.png'" in page and "Workers per pool" in page
    summary = json.loads((tmp_path / journal.SUMMARY).read_text())
    assert summary["workers per pool"] == {
        "orders": {"min": 1, "max": 1},
        "payments": {"min": 2, "max": 5},
    }
    loaded, counted = stats.load_workers(tmp_path, T0)
    assert loaded["payments"][1][19:21].tolist() == [2.0, 5.0]
    assert counted["payments"][1][14:16].tolist() == [3.0, 100.0] and "orders" not in counted


def test_a_run_without_worker_samples_still_has_the_scaling_plot(tmp_path):
    fake_run(tmp_path)
    page = report.render(tmp_path).read_text()
    assert "src='scaling.png'" in page
    assert json.loads((tmp_path / journal.SUMMARY).read_text())["workers per pool"] == {}
