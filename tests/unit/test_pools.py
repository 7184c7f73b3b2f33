"""Pools as units: the local plan (`make up POOLS=...`), per-pool profiles, the worker command,
and the threads pool that remote control can grow and shrink."""

import pytest

from devtools.plan import Ports, parse_pools, plan
from shared.config import Settings
from shared.queues import POOL_QUEUE, Pool, TaskName
from workers.__main__ import parse_args, worker_argv
from workers.app import make_celery
from workers.pool import GrowableThreadPool
from workers.profiles import POOL_IMPLEMENTATIONS, PROFILES, metrics_port, task_annotations


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
        argv = worker_argv(pool, PROFILES[pool].concurrency, None)
        assert f"--queues={POOL_QUEUE[pool].value}" in argv
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
    assert POOL_IMPLEMENTATIONS["threads"] == "workers.pool:GrowableThreadPool"


def test_payments_prefetches_one_and_bulk_is_rate_limited():
    settings = Settings(bulk_rate_limit="3/s")
    assert make_celery(Pool.PAYMENTS, settings).conf.worker_prefetch_multiplier == 1
    bulk = make_celery(Pool.BULK, settings).conf
    assert bulk.task_annotations == {TaskName.SEND_CAMPAIGN_BATCH.value: {"rate_limit": "3/s"}}
    assert task_annotations(Pool.PAYMENTS, settings) == {}
    assert PROFILES[Pool.PAYMENTS].concurrency == max(p.concurrency for p in PROFILES.values())


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
