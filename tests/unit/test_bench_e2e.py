"""bench.e2e's arithmetic: what counts as the system's CPU, and the side-by-side summary."""

from __future__ import annotations

from bench.cpu import Usage
from bench.e2e.report import _summary
from bench.e2e.windows import Ladder, Window


def window(rate: float, paid: int, seconds: dict[str, float], p95: float = 0.4) -> Window:
    return Window(
        rate, 10, placed=paid, paid=paid, paid_per_second=rate, p50_s=0.3, p95_s=p95,
        cpu=Usage(seconds, wall=10),
    )  # fmt: skip


def test_system_cpu_leaves_the_stand_ins_out() -> None:
    w = window(10, 100, {"orders-api": 1.0, "postgresql": 0.5, "stripe": 2.0, "smtp": 1.0})
    assert w.system_ms() == 15.0
    assert w.stand_in_ms() == {"stripe": 20.0, "smtp": 10.0, "load generator": 0.0}


def test_a_window_with_an_unpaid_order_or_a_slow_p95_is_not_sustained() -> None:
    assert window(10, 100, {}).sustained
    assert not window(10, 100, {}, p95=1.2).sustained
    unpaid = window(10, 100, {})
    unpaid.paid = 99
    assert not unpaid.sustained


def test_summary_puts_the_arms_side_by_side_with_their_ratios() -> None:
    ours = Ladder("Doorbuster", [window(20, 200, {"orders-pool": 2.0})], held=None)
    ours.held = window(20, 6000, {"orders-pool": 60.0})
    plain = Ladder("plain Celery", [window(10, 100, {"plain-worker": 2.0})], held=None)
    plain.held = window(10, 3000, {"plain-worker": 60.0})
    rows = {row.split(" | ")[0].strip("| "): row for row in _summary(ours, plain).splitlines()}
    assert "| 10.0 | 20.0 | 0.50x |" in rows["system CPU ms per paid order (profiled window)"]
    held = next(row for name, row in rows.items() if name.startswith("rate held"))
    assert "| 20 | 10 | 2.00x |" in held


def test_a_failed_hold_counts_as_no_held_rate() -> None:
    held = window(20, 6000, {}, p95=3.0)
    assert Ladder("x", [window(20, 200, {})], held).held_rate == 0.0


def test_py_spy_samples_fold_by_library_and_innermost_function(tmp_path) -> None:
    from bench.e2e.pyspy import NATIVE, Profile

    raw = tmp_path / "orders-pool.txt"
    raw.write_text(
        'process 1:"python -m workers orders";run (threading.py:982);'
        "shell (shared/messaging/tasks.py:81);execute (sqlalchemy/engine/base.py:1400) 6\n"
        'process 1:"python -m workers orders";run (threading.py:982);'
        "handle (services/orders/handlers.py:40) 3\n"
        'process 1:"python -m workers orders" 1\n'
    )
    profile = Profile.read(raw)
    assert profile.samples == 10
    assert profile.by_library == {"sqlalchemy": 6, "services.orders": 3, NATIVE: 1}
    assert profile.by_function["execute (base.py)"] == 6
    assert profile.top(profile.by_library, 1) == "sqlalchemy 60%"
