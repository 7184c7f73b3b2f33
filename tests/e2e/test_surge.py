"""`make surge`, short: Locust against the test stack for 20 s, then the report and its audit.

The surge runs as its own process (Locust patches its process with gevent), exactly as
`python -m bench.surge` runs from `make surge`, only pointed at the test stack."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx

from devtools.harness.stack import ROOT, Stack

PLOTS = ("throughput", "latency", "accept_to_paid", "queues", "errors", "machine")


def surge(stack: Stack, out: Path) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "bench.surge", "--users", "10", "--duration", "20"]
    argv += [
        f"--{service}-url={stack.url(service)}"
        for service in ("orders", "inventory", "notifications")
    ]
    argv += ["--stripe-url", stack.stripe_url, "--maildir", str(stack.maildir)]
    argv += [
        "--subscribers",
        "50",
        "--flash-stock",
        "5",
        "--settle-timeout",
        "60",
        "--out",
        str(out),
    ]
    return subprocess.run(
        argv, cwd=ROOT, env=stack.env, capture_output=True, text=True, timeout=240
    )


def test_a_short_surge_writes_the_report_with_a_passing_audit(stack: Stack, tmp_path: Path):
    latency_before = httpx.get(f"{stack.stripe_url}/_emulator/config").json()["latency_ms"]

    done = surge(stack, tmp_path)

    printed = [line for line in done.stdout.splitlines() if line.startswith("report: ")]
    assert printed, (done.stdout + done.stderr)[-3000:]
    report = Path(printed[-1].removeprefix("report: "))
    assert report.parent.parent == tmp_path and (tmp_path / "latest").resolve() == report.parent
    for plot in PLOTS:
        assert (report.parent / f"{plot}.png").stat().st_size > 1000
    page = report.read_text()
    assert "<h2>Audit: <code>make audit</code> over the run's orders</h2>" in page
    audit = (report.parent / "audit.txt").read_text()
    for invariant in range(1, 5):
        assert f"[OK  ] {invariant}." in audit, audit
    # Other tests of the session may leave dead letters of their own; none may be this run's.
    order_ids = [
        line.split(",")[0] for line in (report.parent / "accepted.csv").read_text().splitlines()[1:]
    ]
    assert order_ids, "the surge placed no order"
    assert not [line for line in audit.splitlines() if any(o in line for o in order_ids)], audit
    summary = json.loads((report.parent / "summary.json").read_text())
    assert summary["settle"]["orders still open"] == 0
    assert summary["orders"]["accept-to-paid ms"]["orders"] > 0
    assert summary["checkout"]["requests"] > 0
    assert httpx.get(f"{stack.stripe_url}/_emulator/config").json()["latency_ms"] == latency_before
