"""The autoscaler's decision loop with a fake clock, a fake depth source and fake workers: it
applies KEDA's numbers (deploy/), starts and stops workers by them, and logs every decision
with the numbers behind it."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from ops.autoscale import (
    Autoscaler,
    LocalWorkers,
    QueueSample,
    load_rules,
    parse_limits,
    queue_sample,
    with_overrides,
)
from workers.pools import Pool

ROOT = Path(__file__).resolve().parents[2]


class FakeDepths:
    def __init__(self) -> None:
        self.messages: dict[str, int] = {}
        self.down = False
        self.reads = 0

    def sample(self) -> dict[str, QueueSample]:
        self.reads += 1
        if self.down:
            raise httpx.ConnectError("connection refused")
        return {name: QueueSample(n, ready=n, consumers=1) for name, n in self.messages.items()}


class FakeWorkers:
    def __init__(self) -> None:
        self.names: dict[Pool, list[str]] = {pool: [] for pool in Pool}
        self.started: list[str] = []
        self.stopped: list[str] = []
        self.exited: list[dict[str, Any]] = []
        self.closed = False

    def running(self, pool: Pool) -> int:
        return len(self.names[pool])

    def start(self, pool: Pool) -> str:
        name = f"{pool.value}-pool-{len(self.names[pool]) + 1}"
        self.names[pool].append(name)
        self.started.append(name)
        return name

    def stop(self, pool: Pool) -> str:
        name = self.names[pool].pop()
        self.stopped.append(name)
        return name

    def reap(self) -> list[dict[str, Any]]:
        events, self.exited = self.exited, []
        return events

    def close(self) -> None:
        self.closed = True


RULES = load_rules()


def scaler(rules=None) -> tuple[Autoscaler, FakeDepths, FakeWorkers, list[dict[str, Any]]]:
    depths, workers, log = FakeDepths(), FakeWorkers(), []
    autoscaler = Autoscaler(rules or RULES, depths, workers, log.append, clock=lambda: 0.0)
    return autoscaler, depths, workers, log


def decisions(log: list[dict[str, Any]], pool: str) -> list[dict[str, Any]]:
    return [e for e in log if e["event"] == "autoscale decision" and e["pool"] == pool]


def test_the_rules_are_the_scaled_objects_and_the_capacity_file():
    payments = RULES[Pool.PAYMENTS]
    assert (payments.queue, payments.per_worker, payments.minimum, payments.maximum) == (
        "payments",
        29,
        2,
        8,
    )
    assert (payments.polling_s, payments.up_window_s, payments.down_window_s) == (5, 0, 300)
    assert payments.stop_grace_s > 25  # longer than its longest task
    assert RULES[Pool.BULK].minimum == 0
    assert RULES[Pool.NOTIFICATIONS].up_window_s == 30


def test_it_starts_each_pools_minimum_then_scales_payments_out_at_once_with_the_numbers():
    autoscaler, depths, workers, log = scaler()
    autoscaler.tick(0.0)
    assert {pool: workers.running(pool) for pool in Pool} == {
        Pool.PAYMENTS: 2,
        Pool.ORDERS: 2,
        Pool.NOTIFICATIONS: 1,
        Pool.BULK: 0,
    }
    depths.messages = {"payments": 150}
    autoscaler.tick(3.0)  # not due yet: payments polls every 5 s
    assert workers.running(Pool.PAYMENTS) == 2
    autoscaler.tick(5.0)
    assert workers.running(Pool.PAYMENTS) == 6  # ceil(150 / 29)
    line = decisions(log, "payments")[-1]
    assert line["action"] == "scale out"
    assert (line["messages"], line["per_worker"], line["current"], line["wanted"]) == (
        150,
        29,
        2,
        6,
    )
    assert line["workers"] == 6 and line["consumers"] == 1
    assert line["started"] == [f"payments-pool-{i}" for i in range(3, 7)]
    assert "150 messages / 29 per worker -> want 6" in line["reason"]


def test_scale_in_waits_for_the_window_then_stops_down_to_the_minimum():
    autoscaler, depths, workers, log = scaler()
    depths.messages = {"payments": 300}
    autoscaler.tick(0.0)
    assert workers.running(Pool.PAYMENTS) == 8  # ceil(300 / 29) = 11, capped at 8
    depths.messages = {"payments": 0}
    for t in range(5, 300, 5):
        autoscaler.tick(float(t))
    assert workers.running(Pool.PAYMENTS) == 8  # the 300 s window still holds the want of 8
    autoscaler.tick(300.0)
    assert workers.running(Pool.PAYMENTS) == 2
    assert workers.stopped == [f"payments-pool-{i}" for i in range(8, 2, -1)]
    line = decisions(log, "payments")[-1]
    assert (line["action"], line["current"], line["workers"]) == ("scale in", 8, 2)


def test_an_unchanged_decision_is_logged_once():
    autoscaler, _, _, log = scaler()
    for t in range(0, 60, 5):
        autoscaler.tick(float(t))
    assert len(decisions(log, "payments")) == 1  # the start, then nothing new


def test_a_scale_out_window_ignores_a_spike_seen_once():
    autoscaler, depths, workers, _ = scaler()
    autoscaler.tick(0.0)
    depths.messages = {"notifications.transactional": 1000}  # 229 per worker, 30 s up window
    autoscaler.tick(15.0)
    assert workers.running(Pool.NOTIFICATIONS) == 1  # the want of 1 at 0 s is in the window
    autoscaler.tick(30.0)
    assert workers.running(Pool.NOTIFICATIONS) == 5  # every want in the last 30 s was 5


def test_an_unreachable_broker_keeps_the_workers_and_says_so_once():
    autoscaler, depths, workers, log = scaler()
    autoscaler.tick(0.0)
    depths.down = True
    for t in range(5, 15):
        autoscaler.tick(float(t))
    assert workers.running(Pool.PAYMENTS) == 2 and not workers.stopped
    assert [e["event"] for e in log].count("autoscale cannot read queues") == 1
    depths.down = False
    autoscaler.tick(15.0)
    assert log[-1]["event"] == "autoscale reads queues again"  # and decides as before


def test_a_worker_that_died_is_replaced_at_the_next_poll():
    autoscaler, _, workers, log = scaler()
    autoscaler.tick(0.0)
    workers.names[Pool.PAYMENTS].pop()
    workers.exited.append({"event": "autoscale worker exited", "pool": "payments"})
    autoscaler.tick(5.0)
    assert workers.running(Pool.PAYMENTS) == 2
    assert "autoscale worker exited" in [e["event"] for e in log]


def test_run_stops_every_worker_when_told_to_stop():
    autoscaler, _, workers, log = scaler()

    class StopAfterOne:
        calls = 0

        def is_set(self) -> bool:
            self.calls += 1
            return self.calls > 1

        def wait(self, _: float) -> None:
            pass

    autoscaler.run(StopAfterOne())  # type: ignore[arg-type]
    assert workers.closed and log[-1]["event"] == "autoscale stopped"


def test_local_overrides_and_their_errors():
    rules = with_overrides(RULES, parse_limits("payments=1:3 bulk=:1"), 20, 1, [Pool.PAYMENTS])
    assert list(rules) == [Pool.PAYMENTS]
    payments = rules[Pool.PAYMENTS]
    assert (payments.minimum, payments.maximum, payments.down_window_s, payments.polling_s) == (
        1,
        3,
        20,
        1,
    )
    with pytest.raises(ValueError, match="limits"):
        parse_limits("payments=3")
    with pytest.raises(ValueError, match="above max"):
        with_overrides(RULES, parse_limits("orders=4:2"))


def test_a_management_api_row_counts_ready_and_unacked():
    sample = queue_sample(
        {
            "messages": 40,
            "messages_ready": 24,
            "messages_unacknowledged": 16,
            "consumers": 1,
            "message_stats": {"publish_details": {"rate": 12.345}},
        }
    )
    assert (sample.messages, sample.unacked, sample.publish_per_s, sample.consumers) == (
        40,
        16,
        12.35,
        1,
    )


FAKE_WORKER = """#!/bin/sh
# Stands in for `python -m workers <pool> ...`: a warm shutdown on SIGTERM, unless told to hang.
if [ -n "$HANG" ]; then trap '' TERM; else trap 'exit 0' TERM; fi
while :; do sleep 0.1; done
"""


def fake_python(tmp_path) -> str:
    script = tmp_path / "python"
    script.write_text(FAKE_WORKER)
    script.chmod(0o755)
    return str(script)


def test_local_workers_start_on_their_own_ports_and_stop_newest_first(tmp_path):
    rules = with_overrides(RULES, pools=[Pool.PAYMENTS])
    workers = LocalWorkers(rules, 9100, env={"PATH": "/usr/bin:/bin"}, python=fake_python(tmp_path))
    try:
        assert [workers.start(Pool.PAYMENTS) for _ in range(3)] == [
            "payments-pool-1",
            "payments-pool-2",
            "payments-pool-3",
        ]
        argv = workers.children[1].process.args
        assert argv[1:] == ["-m", "workers", "payments", "--name", "payments-pool-2@%h",
                            "--metrics-port", "9101"]  # fmt: skip
        time.sleep(0.5)  # their traps are set
        assert workers.stop(Pool.PAYMENTS) == "payments-pool-3"
        assert workers.running(Pool.PAYMENTS) == 2
        # A stopping worker keeps its port until it exits: the next start takes another.
        assert workers.start(Pool.PAYMENTS) == "payments-pool-4"
        workers.children[2].process.wait(5)
        [exited] = workers.reap()
        assert (exited["worker"], exited["returncode"], exited["stopped_by_autoscaler"]) == (
            "payments-pool-3",
            0,
            True,
        )
        assert workers.start(Pool.PAYMENTS) == "payments-pool-3"
    finally:
        workers.close(timeout=5)
    assert workers.children == []


def test_a_worker_that_ignores_sigterm_is_killed_after_its_grace(tmp_path):
    now = [0.0]
    rules = with_overrides(RULES, pools=[Pool.PAYMENTS])
    workers = LocalWorkers(
        rules, 9100, env={"PATH": "/usr/bin:/bin", "HANG": "1"}, python=fake_python(tmp_path),
        clock=lambda: now[0],
    )  # fmt: skip
    try:
        workers.start(Pool.PAYMENTS)
        time.sleep(0.3)  # the trap is set
        workers.stop(Pool.PAYMENTS)
        assert workers.reap() == [] and workers.children[0].process.poll() is None
        now[0] = rules[Pool.PAYMENTS].stop_grace_s  # payments: its longest task + 10 s
        workers.reap()
        workers.children[0].process.wait(5)
        [exited] = workers.reap()
        assert exited["returncode"] == -9
    finally:
        workers.close(timeout=5)


def test_workers_do_not_outlive_an_autoscaler_killed_with_sigkill(tmp_path):
    parent = subprocess.Popen(  # an autoscaler that starts one worker, then is SIGKILLed
        [
            sys.executable,
            "-c",
            "import sys, time; from ops.autoscale import LocalWorkers, load_rules;"
            "w = LocalWorkers(load_rules(), 9100, python=sys.argv[1]);"
            "w.start(__import__('workers.pools').pools.Pool.PAYMENTS);"
            "print(w.children[0].process.pid, flush=True); time.sleep(60)",
            fake_python(tmp_path),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    child = psutil.Process(int(parent.stdout.readline()))
    try:
        parent.kill()
        parent.wait(5)
        child.wait(5)  # raises psutil.TimeoutExpired if the worker outlives its autoscaler
        assert not child.is_running()
    finally:
        if child.is_running():
            child.kill()
