from pathlib import Path

from shared.messaging.deliveries import DeliveryCounts, delivery_counts


def test_each_redelivered_run_counts_once_per_task(tmp_path: Path):
    counts = DeliveryCounts(tmp_path / "d.sqlite")
    assert [counts.count("a") for _ in range(3)] == [1, 2, 3]
    assert counts.count("b") == 1
    counts.forgive("a")
    assert counts.count("a") == 3
    # Another process (here another object) on the same file sees the same counts.
    assert DeliveryCounts(tmp_path / "d.sqlite").count("b") == 2


def test_one_file_per_pool(tmp_path: Path):
    payments = delivery_counts("doorbuster-payments", str(tmp_path))
    assert payments is delivery_counts("doorbuster-payments", str(tmp_path))
    assert payments.path == tmp_path / "doorbuster-payments-deliveries.sqlite"
    assert delivery_counts("doorbuster-orders", str(tmp_path)).count("x") == 1
    assert payments.count("x") == 1
