"""`doorbuster autoscale` (or `python -m ops.autoscale`): KEDA's rule, applied to local pools.

Every pool has the numbers of its ScaledObject in deploy/k8s/base/pools/<pool>.yaml (min, max,
polling interval, the HPA's scale-out and scale-in stabilization windows) and the threshold per
worker computed from deploy/capacity.yaml (ops/scaling.py, the same value as the trigger's,
which tests/unit/test_scaling.py checks). Each polling interval the autoscaler reads the pool's
queue from the RabbitMQ management API (ready + unacked, as KEDA's `QueueLength` with
`protocol: http` counts them; the publish rate and the consumers are logged beside it), asks
ops/scaling.py how many workers to run, and starts or stops local processes of that pool (the
command `make up` runs: `workers.pools.instance_argv`) until it runs that many.

Each decision is one JSON line on stderr (`"event": "autoscale decision"`) with the numbers
behind it; an unchanged decision of an unchanged queue is not repeated. A stopped worker gets
SIGTERM (Celery's warm shutdown: it finishes its running tasks) and SIGKILL only after the
pool's `longest_task_s` plus a margin. SIGTERM or Ctrl-C stops every child the same way; a
child gets SIGTERM by itself if the autoscaler dies without stopping it (Linux).

What KEDA does and this does not: the HPA's rate policies (how many pods per period) are not
applied, so a scale-out starts every worker wanted at once; workers are processes on one host
(metrics ports METRICS_PORT + the pool's offset + the instance index), not pods.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import httpx
import yaml

from ops.rabbit import Management, vhost_of
from ops.scaling import Capacity, Decision, decide
from workers.pools import POOLS, Pool, instance_argv

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
# A stopping worker may finish its longest task, then this long to exit.
STOP_MARGIN_S = 10.0
# Instance indexes per pool: the metrics offsets of workers.pools are 10 apart.
MAX_INSTANCES = 10

Emit = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class PoolRule:
    """One pool's ScaledObject and capacity row, as the autoscaler applies them."""

    pool: Pool
    queue: str
    per_worker: int
    minimum: int
    maximum: int
    polling_s: float
    up_window_s: float
    down_window_s: float
    stop_grace_s: float


def _scaled_object(pool: Pool, deploy: Path) -> dict[str, Any]:
    docs = yaml.safe_load_all(
        (deploy / "k8s" / "base" / "pools" / f"{pool.value}.yaml").read_text()
    )
    return next(doc for doc in docs if doc and doc.get("kind") == "ScaledObject")


def load_rules(deploy: Path = DEPLOY) -> dict[Pool, PoolRule]:
    capacity = yaml.safe_load((deploy / "capacity.yaml").read_text())["pools"]
    rules = {}
    for pool in Pool:
        spec = _scaled_object(pool, deploy)["spec"]
        behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
        row = capacity[pool.value]
        rules[pool] = PoolRule(
            pool=pool,
            queue=POOLS[pool].queue.value,
            per_worker=Capacity(
                row["concurrency"], row["service_time_s"], row["target_wait_s"]
            ).per_worker,
            minimum=int(spec["minReplicaCount"]),
            maximum=int(spec["maxReplicaCount"]),
            polling_s=float(spec["pollingInterval"]),
            up_window_s=float(behavior["scaleUp"].get("stabilizationWindowSeconds", 0)),
            down_window_s=float(behavior["scaleDown"].get("stabilizationWindowSeconds", 300)),
            stop_grace_s=float(row["longest_task_s"]) + STOP_MARGIN_S,
        )
    return rules


def parse_limits(spec: str) -> dict[Pool, tuple[int | None, int | None]]:
    """`"payments=1:4 bulk=:1"` -> per-pool (min, max) overrides; an empty side keeps KEDA's."""
    limits: dict[Pool, tuple[int | None, int | None]] = {}
    for part in spec.replace(",", " ").split():
        name, _, bounds = part.partition("=")
        low, sep, high = bounds.partition(":")
        try:
            pool = Pool(name.strip())
            if not sep:
                raise ValueError
            pair = (int(low) if low else None, int(high) if high else None)
        except ValueError:
            known = " ".join(pool.value for pool in Pool)
            raise ValueError(
                f"limits: {part!r} is not <pool>=<min>:<max> with a pool among: {known}"
            ) from None
        if any(bound is not None and bound < 0 for bound in pair):
            raise ValueError(f"limits: {part!r}: a bound cannot be negative")
        limits[pool] = pair
    return limits


def with_overrides(
    rules: dict[Pool, PoolRule],
    limits: dict[Pool, tuple[int | None, int | None]] | None = None,
    down_window_s: float | None = None,
    polling_s: float | None = None,
    pools: Iterable[Pool] | None = None,
) -> dict[Pool, PoolRule]:
    """KEDA's numbers with local overrides (a laptop has fewer cores than a cluster)."""
    chosen = set(pools) if pools is not None else set(rules)
    result = {}
    for pool, rule in rules.items():
        if pool not in chosen:
            continue
        low, high = (limits or {}).get(pool, (None, None))
        rule = replace(
            rule,
            minimum=rule.minimum if low is None else low,
            maximum=rule.maximum if high is None else high,
            down_window_s=rule.down_window_s if down_window_s is None else down_window_s,
            polling_s=rule.polling_s if polling_s is None else polling_s,
        )
        if rule.minimum > rule.maximum:
            raise ValueError(f"{pool.value}: min {rule.minimum} above max {rule.maximum}")
        if rule.maximum > MAX_INSTANCES:
            raise ValueError(f"{pool.value}: at most {MAX_INSTANCES} local workers per pool")
        result[pool] = rule
    return result


@dataclass(frozen=True)
class QueueSample:
    messages: int  # ready + unacked: what the rule counts
    ready: int = 0
    unacked: int = 0
    publish_per_s: float = 0.0
    deliver_per_s: float = 0.0
    consumers: int = 0


class DepthSource(Protocol):
    def sample(self) -> dict[str, QueueSample]:
        """Every queue of the vhost by name; raises OSError/httpx.HTTPError when unreachable."""


class ManagementDepths:
    """The queues as KEDA's rabbitmq scaler reads them (`protocol: http`)."""

    def __init__(self, management: Management):
        self.management = management

    def sample(self) -> dict[str, QueueSample]:
        return {name: queue_sample(stats) for name, stats in self.management.queues().items()}


def _rate(stats: dict[str, Any], key: str) -> float:
    return float(((stats.get("message_stats") or {}).get(f"{key}_details") or {}).get("rate", 0))


def queue_sample(stats: dict[str, Any]) -> QueueSample:
    ready, unacked = (
        int(stats.get("messages_ready") or 0),
        int(stats.get("messages_unacknowledged") or 0),
    )
    return QueueSample(
        messages=int(stats.get("messages") or ready + unacked),
        ready=ready,
        unacked=unacked,
        publish_per_s=round(_rate(stats, "publish"), 2),
        deliver_per_s=round(_rate(stats, "deliver_get"), 2),
        consumers=int(stats.get("consumers") or 0),
    )


class Workers(Protocol):
    def running(self, pool: Pool) -> int: ...
    def start(self, pool: Pool) -> str: ...
    def stop(self, pool: Pool) -> str: ...
    def reap(self) -> list[dict[str, Any]]: ...
    def close(self) -> None: ...


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the autoscaler dies, even by SIGKILL (Linux's
    PR_SET_PDEATHSIG), so no worker outlives the process that counts it."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG = 1


@dataclass
class _Child:
    pool: Pool
    index: int
    name: str
    process: subprocess.Popen[bytes]
    kill_at: float | None = None  # set when stopping


class LocalWorkers:
    """Worker processes of this host, started as `make up` starts them. They share this
    process's process group (a SIGKILL to the group, as honcho's, takes them too)."""

    def __init__(
        self,
        rules: dict[Pool, PoolRule],
        metrics_base: int,
        env: dict[str, str] | None = None,
        python: str = sys.executable,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.rules, self.metrics_base, self.python, self.clock = rules, metrics_base, python, clock
        self.env = env if env is not None else dict(os.environ)
        self.children: list[_Child] = []

    def _live(self, pool: Pool) -> list[_Child]:
        return [c for c in self.children if c.pool == pool and c.kill_at is None]

    def running(self, pool: Pool) -> int:
        return len(self._live(pool))

    def start(self, pool: Pool) -> str:
        taken = {c.index for c in self.children if c.pool == pool}  # a stopping one keeps its port
        index = min(set(range(MAX_INSTANCES)) - taken)
        name = f"{pool.value}-pool-{index + 1}"
        port = self.metrics_base + POOLS[pool].metrics_offset + index
        process = subprocess.Popen(  # noqa: S603
            instance_argv(pool, name, port, self.python),
            cwd=ROOT,
            env=self.env,
            preexec_fn=_die_with_parent,  # safe: this process forks from its only thread
        )
        self.children.append(_Child(pool, index, name, process))
        return name

    def stop(self, pool: Pool) -> str:
        """SIGTERM to the pool's newest worker (warm shutdown); SIGKILL after its grace."""
        child = max(self._live(pool), key=lambda c: c.index)
        child.process.send_signal(signal.SIGTERM)
        child.kill_at = self.clock() + self.rules[pool].stop_grace_s
        return child.name

    def reap(self) -> list[dict[str, Any]]:
        """Forget exited workers (saying which exited unasked); kill those past their grace."""
        events = []
        now = self.clock()
        for child in list(self.children):
            returncode = child.process.poll()
            if returncode is not None:
                self.children.remove(child)
                events.append(
                    {
                        "event": "autoscale worker exited",
                        "pool": child.pool.value,
                        "worker": child.name,
                        "returncode": returncode,
                        "stopped_by_autoscaler": child.kill_at is not None,
                    }
                )
            elif child.kill_at is not None and now >= child.kill_at:
                child.process.kill()
        return events

    def close(self, timeout: float | None = None) -> None:
        """Stop every child: SIGTERM, wait up to the longest grace (or `timeout`), SIGKILL."""
        for child in self.children:
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        grace = max((self.rules[c.pool].stop_grace_s for c in self.children), default=0.0)
        deadline = self.clock() + (grace if timeout is None else timeout)
        for child in self.children:
            try:
                child.process.wait(max(0.0, deadline - self.clock()))
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()
        self.children.clear()


@dataclass
class _PoolState:
    next_due: float = 0.0
    wants: deque[tuple[float, int]] = field(default_factory=deque)
    last: tuple[Any, ...] | None = None


class Autoscaler:
    """The decision loop. `tick(now)` does one round; everything it touches is injected (the
    depth source, the workers, the clock, the log), so tests drive it without I/O."""

    def __init__(
        self,
        rules: dict[Pool, PoolRule],
        source: DepthSource,
        workers: Workers,
        emit: Emit,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.rules, self.source, self.workers, self.emit, self.clock = (
            rules,
            source,
            workers,
            emit,
            clock,
        )
        self.state = {pool: _PoolState() for pool in rules}
        self._broker_down = False

    def tick(self, now: float | None = None) -> list[Decision]:
        now = self.clock() if now is None else now
        for event in self.workers.reap():
            self.emit(event)
        due = [rule for pool, rule in self.rules.items() if now >= self.state[pool].next_due]
        if not due:
            return []
        try:
            samples = self.source.sample()
        except (OSError, httpx.HTTPError, ValueError) as exc:
            if not self._broker_down:
                self.emit({"event": "autoscale cannot read queues", "error": str(exc)})
            self._broker_down = True
            for rule in due:  # keep what runs; try again next second
                self.state[rule.pool].next_due = now + 1.0
            return []
        if self._broker_down:
            self.emit({"event": "autoscale reads queues again"})
        self._broker_down = False
        return [self._decide(rule, samples.get(rule.queue, QueueSample(0)), now) for rule in due]

    def _decide(self, rule: PoolRule, sample: QueueSample, now: float) -> Decision:
        state = self.state[rule.pool]
        state.next_due = now + rule.polling_s
        horizon = max(rule.down_window_s, rule.up_window_s)
        while state.wants and state.wants[0][0] <= now - horizon:
            state.wants.popleft()
        decision = decide(
            self.workers.running(rule.pool),
            sample.messages,
            rule.per_worker,
            rule.minimum,
            rule.maximum,
            recent_wants=[w for t, w in state.wants if t > now - rule.down_window_s],
            recent_up_wants=[w for t, w in state.wants if t > now - rule.up_window_s],
        )
        state.wants.append((now, decision.wanted))
        started = [
            self.workers.start(rule.pool) for _ in range(decision.workers - decision.current)
        ]
        stopped = [self.workers.stop(rule.pool) for _ in range(decision.current - decision.workers)]
        key = (sample.messages, decision.wanted, decision.workers)
        if key != state.last or started or stopped:
            action = "scale out" if started else "scale in" if stopped else "hold"
            self.emit(
                {
                    "event": "autoscale decision",
                    "pool": rule.pool.value,
                    "queue": rule.queue,
                    "action": action,
                    **asdict(sample),
                    "per_worker": rule.per_worker,
                    "current": decision.current,
                    "wanted": decision.wanted,
                    "workers": decision.workers,
                    "min": rule.minimum,
                    "max": rule.maximum,
                    "started": started,
                    "stopped": stopped,
                    "reason": decision.reason,
                }
            )
        state.last = key
        return decision

    def run(self, stop: threading.Event, interval: float = 1.0) -> None:
        """Tick every `interval` until `stop` is set, then stop every worker."""
        try:
            while not stop.is_set():
                self.tick()
                stop.wait(interval)
        finally:
            self.emit({"event": "autoscale stopping its workers"})
            self.workers.close()
            self.emit({"event": "autoscale stopped"})


def json_lines(stream: Any = sys.stderr) -> Emit:
    """One JSON object per line, like every process's log (shared.infra.observability)."""

    def emit(event: dict[str, Any]) -> None:
        line = {"ts": round(time.time(), 3), "process": "autoscale", **event}
        stream.write(json.dumps(line) + "\n")
        stream.flush()

    return emit


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ops.autoscale", description=__doc__)
    parser.add_argument(
        "--pools",
        default=" ".join(pool.value for pool in Pool),
        help="the pools to manage (default: all four)",
    )
    parser.add_argument(
        "--limits", default="", help='min:max overrides, e.g. "payments=1:4 bulk=0:1"'
    )
    parser.add_argument(
        "--scale-in-window", type=float, help="seconds (default: each ScaledObject's, 300 s)"
    )
    parser.add_argument("--polling", type=float, help="seconds (default: each ScaledObject's)")
    parser.add_argument(
        "--metrics-base",
        type=int,
        help="metrics port base of the workers (default: METRICS_PORT, 9100)",
    )
    return parser.parse_args(argv)


def rules_of(args: argparse.Namespace) -> dict[Pool, PoolRule]:
    pools = [Pool(name) for name in args.pools.replace(",", " ").split()]
    return with_overrides(
        load_rules(), parse_limits(args.limits), args.scale_in_window, args.polling, pools
    )


def minimums(argv: list[str]) -> dict[Pool, int]:
    """The workers per pool an autoscaler started with `argv` runs from its first decision
    (`make up` waits for them before it says the stack is ready)."""
    return {pool: rule.minimum for pool, rule in rules_of(parse_args(argv)).items()}


def build(args: argparse.Namespace) -> tuple[Autoscaler, Management]:
    from shared.infra.settings import get_settings

    settings = get_settings()
    rules = rules_of(args)
    management = Management(settings.rabbitmq_management_url, vhost_of(settings.rabbitmq_url))
    base = args.metrics_base if args.metrics_base is not None else settings.metrics_port
    workers = LocalWorkers(rules, base)
    emit = json_lines()
    emit(
        {
            "event": "autoscale started",
            "vhost": management.vhost,
            "rules": {
                pool.value: {**asdict(rule), "pool": pool.value} for pool, rule in rules.items()
            },
        }
    )
    return Autoscaler(rules, ManagementDepths(management), workers, emit), management


def main(argv: list[str] | None = None) -> None:
    try:
        autoscaler, management = build(parse_args(argv))
    except ValueError as exc:
        sys.exit(f"autoscale: {exc}")
    stop = threading.Event()

    def on_signal(signum: int, _: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        autoscaler.run(stop)
    finally:
        management.close()


if __name__ == "__main__":
    main()
