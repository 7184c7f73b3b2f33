"""Pools as units: the pool table (`workers/pools.py`), the local plan (`make up POOLS=...`),
the worker command, and the threads pool that remote control can grow and shrink."""

from types import SimpleNamespace

import pytest
from celery import Celery

import workers.__main__ as workers_main
from devtools.plan import Ports, autoscaled_probes, parse_autoscale, parse_pools, plan
from ops.autoscale import minimums
from ops.pools import pool_rows
from shared.infra.settings import Settings
from shared.messaging.message import all_messages
from shared.messaging.topology import QueueName
from workers.__main__ import parse_args, worker_argv
from workers.app import make_celery
from workers.pools import (
    POOL_IMPLEMENTATIONS,
    POOLS,
    Pool,
    all_task_modules,
    metrics_port,
    pool_of_queue,
)
from workers.threads import GrowableThreadPool


def test_pools_default_to_one_process_each():
    assert parse_pools("") == {pool: 1 for pool in Pool}


@pytest.mark.parametrize("spec", ["payments=2 bulk=0", "payments=2,bulk=0", " payments=2  bulk=0 "])
def test_pools_take_per_pool_counts(spec):
    assert parse_pools(spec) == {
        Pool.PAYMENTS: 2,
        Pool.ORDERS: 1,
        Pool.NOTIFICATIONS: 1,
        Pool.BULK: 0,
    }


@pytest.mark.parametrize("spec", ["payment=2", "payments=two", "payments=-1"])
def test_a_bad_pool_spec_says_what_is_expected(spec):
    with pytest.raises(ValueError, match="POOLS"):
        parse_pools(spec)


def test_the_plan_runs_each_instance_with_its_own_name_and_metrics_port():
    processes = plan(Ports(metrics=9100), parse_pools("payments=3 bulk=0"), False, False, "/tmp/m")
    pools = [process for process in processes if process.metrics_url]
    names = [process.name for process in pools]
    assert names == [
        "payments-pool-1",
        "payments-pool-2",
        "payments-pool-3",
        "orders-pool",
        "notifications-pool",
    ]
    ports = [int(process.argv[process.argv.index("--metrics-port") + 1]) for process in pools]
    assert ports == [9100, 9101, 9102, 9110, 9120]
    assert len({process.metrics_url for process in pools}) == len(pools)
    first = pools[0].argv
    assert first[1:4] == ["-m", "workers", "payments"]
    assert first[first.index("--name") + 1] == "payments-pool-1@%h"


def test_metrics_ports_of_pools_never_collide():
    settings = Settings(metrics_port=9100)
    ports = {metrics_port(pool, settings, index) for pool in Pool for index in range(10)}
    assert len(ports) == 40
    assert metrics_port(Pool.PAYMENTS, Settings(metrics_port=0)) == 0


def test_each_pool_consumes_only_its_queue():
    for pool in Pool:
        argv = worker_argv(pool, POOLS[pool].concurrency, None)
        assert f"--queues={POOLS[pool].queue.value}" in argv
        # Events cost a publish per task; Flower enables them while it runs.
        assert "--task-events" not in argv


def test_the_command_takes_pool_concurrency_type_and_metrics_port():
    args = parse_args(["payments", "-c", "32", "-P", "prefork", "--metrics-port", "9999"])
    assert (args.pool, args.concurrency, args.pool_type, args.metrics_port) == (
        "payments",
        32,
        "prefork",
        9999,
    )
    assert POOL_IMPLEMENTATIONS["threads"] == "workers.threads:GrowableThreadPool"


def test_payments_prefetches_one_and_no_batch_waits_on_a_celery_rate_limit():
    settings = Settings()
    assert make_celery(Pool.PAYMENTS, settings).conf.worker_prefetch_multiplier == 1
    # Campaign mail is paced inside the batch, while it sends (see test_campaigns' drain test).
    assert not make_celery(Pool.BULK, settings).conf.task_annotations
    assert POOLS[Pool.PAYMENTS].concurrency == max(p.concurrency for p in POOLS.values())


def test_the_threads_pool_grows_and_shrinks():
    pool = GrowableThreadPool(limit=2)
    try:
        pool.grow(3)
        assert (pool.limit, pool.num_processes, pool.executor._max_workers) == (5, 5, 5)
        pool.shrink(4)
        assert (pool.limit, pool.num_processes) == (1, 1)
        pool.shrink(5)
        assert pool.limit == 1
        assert pool._get_info()["max-concurrency"] == 1
    finally:
        pool.executor.shutdown()


def test_the_table_gives_every_queue_exactly_one_pool():
    assert sorted(spec.queue for spec in POOLS.values()) == sorted(QueueName)
    for pool, spec in POOLS.items():
        assert pool_of_queue(spec.queue.value) is pool
        assert spec.model in POOL_IMPLEMENTATIONS and spec.concurrency >= 1
    assert pool_of_queue("notifications.bulk.dlq") is None


def test_a_pool_loads_every_task_routed_to_its_queue_and_only_its_modules():
    settings = Settings()
    for pool, spec in POOLS.items():
        app = make_celery(pool, settings)
        app.loader.import_default_modules()
        routed = {m.name for m in all_messages() if m.route.queue is spec.queue}
        assert routed <= set(app.tasks), f"{pool}: a task routed to {spec.queue} is not loaded"
        assert app.conf.include == list(spec.task_modules)
        assert app.conf.task_default_queue == spec.queue.value
    assert make_celery(None, settings).conf.include == all_task_modules()


def test_the_pool_command_runs_what_the_table_says(monkeypatch):
    started = {}

    def worker_main(app, argv):
        started.update(argv=argv, pool=app.conf.worker_pool, port=app.conf.doorbuster_metrics_port)

    monkeypatch.setattr(Celery, "worker_main", worker_main)
    monkeypatch.setattr(workers_main, "get_settings", lambda: Settings(metrics_port=9100))
    workers_main.main(["notifications"])
    assert "--queues=notifications.transactional" in started["argv"]
    assert "--concurrency=4" in started["argv"]
    assert started["pool"] == "workers.threads:GrowableThreadPool"
    assert started["port"] == 9120
    workers_main.main(["notifications", "-c", "9", "-P", "prefork", "--metrics-port", "0"])
    assert "--concurrency=9" in started["argv"]
    assert (started["pool"], started["port"]) == ("prefork", 0)


class _Inspect:
    """What two workers answer to Celery's inspect: one on the transactional mail queue."""

    def active_queues(self):
        return {
            "mail@h": [{"name": "notifications.transactional"}],
            "pay@h": [{"name": "payments"}],
        }

    def stats(self):
        return {"mail@h": {"pool": {"max-concurrency": 4}}, "pay@h": {"pool": {}}}

    def active(self):
        return {"mail@h": [{}, {}]}


def test_the_ops_cli_sorts_workers_into_pools_by_the_table():
    app = SimpleNamespace(control=SimpleNamespace(inspect=lambda timeout: _Inspect()))
    rows = {row.pool: row for row in pool_rows(app)}
    assert [row.queue for row in rows.values()] == [spec.queue.value for spec in POOLS.values()]
    mail = rows["notifications"]
    assert (mail.workers, mail.concurrency, mail.active) == (1, 4, 2)
    assert (rows["payments"].workers, rows["orders"].workers, rows["bulk"].workers) == (1, 0, 0)


def test_autoscaled_pools_get_one_autoscaler_instead_of_fixed_processes():
    assert parse_autoscale("") == [] and parse_autoscale("1") == list(Pool)
    assert parse_autoscale("payments,orders") == [Pool.PAYMENTS, Pool.ORDERS]
    with pytest.raises(ValueError, match="AUTOSCALE"):
        parse_autoscale("payment")
    processes = plan(
        Ports(metrics=9100),
        parse_pools(""),
        False,
        False,
        "/tmp/m",
        autoscaled=[Pool.PAYMENTS, Pool.ORDERS],
        autoscale_args=["--limits", "payments=1:4"],
    )
    names = [process.name for process in processes if process.metrics_url]
    assert names == ["notifications-pool", "bulk-pool"]
    [autoscale] = [process for process in processes if process.name == "autoscale"]
    assert autoscale.argv[1:] == [
        "-m",
        "ops.autoscale",
        "--pools",
        "payments orders",
        "--metrics-base",
        "9100",
        "--limits",
        "payments=1:4",
    ]


def test_make_up_waits_for_the_workers_an_autoscaler_starts_at_once():
    wanted = minimums(["--pools", "payments bulk", "--limits", "payments=1:4"])
    assert wanted == {Pool.PAYMENTS: 1, Pool.BULK: 0}  # bulk's ScaledObject starts at zero
    assert minimums(["--pools", "orders"]) == {Pool.ORDERS: 2}  # KEDA's minReplicaCount
    probes = autoscaled_probes(Ports(metrics=9100), {Pool.PAYMENTS: 2, Pool.BULK: 0})
    assert [(p.name, p.health_url, p.argv) for p in probes] == [
        ("payments-pool-1", "http://127.0.0.1:9100/readyz", []),
        ("payments-pool-2", "http://127.0.0.1:9101/readyz", []),
    ]
