"""`make surge`: the Black-Friday load test against a running stack, and its report.

    python -m bench.surge [--users 100] [--duration 100] [--profile step] [--ui] ...

1. checks the stack answers, warns when old data will slow the run (a campaign audience far
   above what it imports, a backlog in the queues: `make reset`), sets the Stripe emulator's
   latency (200 ms median by default), creates the run's catalog and flash-sale sku, imports
   the campaign's subscribers;
2. runs Locust in its own process (gevent) with the step profile, headless or with its web UI,
   while a thread samples the queue depths;
3. settles: waits (bounded) until every order it placed is final and the campaign is done;
4. runs `make audit` over the run's orders and renders var/surge/<run>/report.html.

Exit status: 0 when the report is written and the audit holds, 1 when an invariant is violated,
2 when no stack answers. Keys come from STOREFRONT_KEY / ADMIN_KEY (default: development keys);
the audit reads the same environment as `make audit` (DATABASE_URL, RABBITMQ_URL, ...).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import sys
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from pydantic_settings import BaseSettings

from bench.surge import journal, launch, old_data, profile, report, seed, settle, target
from bench.surge.depths import DepthSampler
from ops.audit import render as render_audit
from ops.audit import run_audit
from shared.infra.settings import get_settings

ROOT = Path(__file__).resolve().parents[2]
AUDIT_RETRIES = 3
DEFAULT_URLS = {
    "orders": "http://127.0.0.1:8001",
    "inventory": "http://127.0.0.1:8002",
    "notifications": "http://127.0.0.1:8003",
}


class Keys(BaseSettings):
    """The API keys the shoppers and the admin use (STOREFRONT_KEY, ADMIN_KEY)."""

    storefront_key: str = "dev-storefront"
    admin_key: str = "dev-admin"


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.surge",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--users", type=int, default=100, help="peak users (baseline: 1/10)")
    parser.add_argument("--duration", type=float, default=100.0, help="seconds of load")
    parser.add_argument("--spawn-rate", type=float, help="users/s (default: surge within 10 s)")
    parser.add_argument("--profile", default="step", help="step | flat | 30s:10,50s:100,20s:10")
    parser.add_argument("--ui", action="store_true", help="Locust's web UI (starts at once)")
    parser.add_argument("--web-port", type=int, default=8089)
    for service, url in DEFAULT_URLS.items():
        parser.add_argument(f"--{service}-url", default=url, help=f"{service} API base URL")
    parser.add_argument("--stripe-url", help="Stripe emulator (default: STRIPE_API_BASE)")
    parser.add_argument(
        "--stripe-latency-ms",
        default="200",
        help="emulator median latency during the run, or 'keep'",
    )
    parser.add_argument("--catalog", type=int, default=20, help="skus with plenty of stock")
    parser.add_argument("--flash-stock", type=int, default=25, help="units of the flash sku")
    parser.add_argument("--subscribers", type=int, default=2000, help="campaign audience")
    parser.add_argument("--settle-timeout", type=float, default=120.0, help="seconds")
    parser.add_argument(
        "--maildir",
        help="the stack's SMTP sink Maildir, for the audit "
        "(default var/mail when it exists; '' for none)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "surge")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    plan = profile.parse(args.profile, args.users, args.duration, args.spawn_rate)
    urls = {service: getattr(args, f"{service}_url").rstrip("/") for service in DEFAULT_URLS}
    down = target.unhealthy(urls)
    if down:
        print(f"no stack answers at {', '.join(down)}: start one (make up) or pass its URLs")
        return 2
    surge = Surge(args, plan, urls)
    seeded = surge.prepare()
    if not surge.load(seeded):
        return 2
    return 0 if surge.finish() else 1


class Surge:
    """One run: its folder, its record (run.json) and its phases."""

    def __init__(self, args: argparse.Namespace, plan: profile.Profile, urls: dict[str, str]):
        self.args, self.plan, self.urls = args, plan, urls
        self.run_id = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        self.folder = args.out / self.run_id
        self.settings = get_settings()
        self.stripe_url = (args.stripe_url or self.settings.stripe_api_base).rstrip("/")
        self.keys = Keys()
        self.started_at = datetime.now(UTC)  # the audit checks orders from here on
        self.record: dict[str, Any] = {"run id": self.run_id, "notes": []}
        self.record["machine"] = target.machine()
        self.record["profile"] = {
            "name": plan.name,
            "duration": plan.duration,
            "stages": [asdict(stage) for stage in plan.stages],
        }
        self.emulator_before: dict[str, Any] | None = None

    def prepare(self) -> seed.Seeded:
        self.folder.mkdir(parents=True)
        self.warn_about_old_data()
        self.emulator_before = prepare_emulator(
            self.stripe_url, self.args.stripe_latency_ms, self.record
        )
        seeded = seed_run(self.urls, self.keys, self.run_id, self.args)
        self.record["settings"] = describe(
            self.args, self.plan, self.urls, self.stripe_url, seeded, self.record
        )
        print(
            f"surge {self.run_id}: {self.plan.name} profile, {self.plan.peak_users} users at "
            f"the peak, {self.plan.duration:.0f} s; files in {self.folder}"
        )
        return seeded

    def warn_about_old_data(self) -> None:
        """Before anything runs: data from earlier runs that will slow this one."""
        found = asyncio.run(old_data.measure(self.settings, self.args.subscribers))
        for line in old_data.warnings(
            found, self.args.subscribers, self.settings.bulk_mail_rate_per_second
        ):
            print(line, flush=True)
            self.record["notes"].append(line)

    def load(self, seeded: seed.Seeded) -> bool:
        """Locust, then settling, with queue depths and CPU sampled all along. False when
        Locust sent nothing (it refused its arguments, or could not start)."""
        depths = DepthSampler(self.settings, self.folder)
        machine = target.MachineSampler(self.folder)
        depths.start()
        machine.start()
        if self.args.ui:
            print(f"Locust's web UI: http://127.0.0.1:{self.args.web_port}")
        try:
            argv = launch.locust_argv(self.args, self.urls, self.run_id, seeded, self.folder)
            self.record["locust exit"] = launch.run_locust(argv, self.plan, self.folder, machine)
            if not (self.folder / journal.REQUESTS).exists():
                print(f"Locust sent no request (exit {self.record['locust exit']}): see above")
                return False
            patience = self.args.settle_timeout
            print(f"load done; settling (at most {patience:.0f} s)")
            settled = settle_run(self.urls, self.keys, self.folder, patience)
            self.record["settle"] = asyncio.run(settled)
        finally:
            depths.stop()
            machine.stop()
            self.record["queue source"] = depths.source
            restore_emulator(self.stripe_url, self.emulator_before)
        return True

    def finish(self) -> bool:
        """Audit, report, and point var/surge/latest at this run. True when the audit holds."""
        ok = audit(self.settings, self.started_at, maildir_of(self.args), self.folder, self.record)
        end_load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        self.record["machine"]["load average at the end"] = end_load
        journal.write_json(self.folder / journal.RUN, self.record)
        page = report.render(self.folder)
        link_latest(self.args.out, self.folder)
        print(f"report: {page}")
        return ok


def prepare_emulator(stripe_url: str, latency: str, run: dict[str, Any]) -> dict[str, Any] | None:
    before = target.emulator_config(stripe_url)
    if before is None:
        run["notes"].append(f"{stripe_url} is not the project's Stripe emulator: latency unknown")
        run["emulator latency ms"] = "unknown"
    elif latency != "keep":
        target.set_emulator_latency(stripe_url, float(latency))
        run["emulator latency ms"] = float(latency)
    else:
        run["emulator latency ms"] = before.get("latency_ms")
    return before


def restore_emulator(stripe_url: str, before: dict[str, Any] | None) -> None:
    if before is not None:
        target.set_emulator_latency(stripe_url, float(before.get("latency_ms") or 0.0))


def seed_run(
    urls: dict[str, str], keys: Keys, run_id: str, args: argparse.Namespace
) -> seed.Seeded:
    admin = {"Authorization": f"Bearer {keys.admin_key}"}
    with (
        httpx.Client(base_url=urls["inventory"], headers=admin, timeout=30) as inventory,
        httpx.Client(base_url=urls["notifications"], headers=admin, timeout=60) as notifications,
    ):
        return seed.seed(
            inventory, notifications, run_id, args.catalog, args.flash_stock, args.subscribers
        )


def describe(
    args: argparse.Namespace,
    plan: profile.Profile,
    urls: dict[str, str],
    stripe_url: str,
    seeded: seed.Seeded,
    run: dict[str, Any],
) -> dict[str, Any]:
    """The settings that produced the report, as the report shows them."""
    subscribers = seeded.subscribers
    return {
        "command": "python -m bench.surge " + shlex.join(sys.argv[1:]),
        "profile": args.profile,
        "users at the peak": plan.peak_users,
        "users at the baseline": min(stage.users for stage in plan.stages),
        "duration (s)": plan.duration,
        "spawn rate (users/s)": plan.stages[0].spawn_rate,
        "web UI": args.ui,
        **{f"{service} API": url for service, url in urls.items()},
        "Stripe": stripe_url,
        "emulator median latency (ms)": run["emulator latency ms"],
        "catalog skus": len(seeded.skus),
        "flash sku (stock)": f"{seeded.flash_sku} ({seeded.flash_stock})",
        "flash sale opens at (s)": plan.surge_starts_at,
        "campaign at (s)": plan.midpoint,
        "subscribers imported": subscribers.get("note")
        or f"{subscribers['created']} new, {subscribers['existing']} existing",
        "settle timeout (s)": args.settle_timeout,
    }


async def settle_run(
    urls: dict[str, str], keys: Keys, folder: Path, patience: float
) -> dict[str, Any]:
    storefront = {"Authorization": f"Bearer {keys.storefront_key}"}
    admin = {"Authorization": f"Bearer {keys.admin_key}"}
    async with (
        httpx.AsyncClient(base_url=urls["orders"], headers=storefront, timeout=20) as orders,
        httpx.AsyncClient(base_url=urls["notifications"], headers=admin, timeout=20) as notify,
    ):
        return await settle.settle(orders, notify, folder, patience)


def maildir_of(args: argparse.Namespace) -> str | None:
    if args.maildir is not None:
        return args.maildir or None
    default = ROOT / "var" / "mail"
    return str(default) if default.is_dir() else None


def audit(
    settings: Any, since: datetime, maildir: str | None, folder: Path, run: dict[str, Any]
) -> bool:
    verdicts = asyncio.run(run_audit(settings, since, maildir))
    for _ in range(AUDIT_RETRIES):
        if not any(v.startswith("could not check") for x in verdicts for v in x.violations):
            break
        # A source that did not answer (the shared broker restarted by someone's fault test)
        # is not a violated invariant: ask again before judging.
        run["notes"].append("an audit source did not answer; audited again 10 s later")
        time.sleep(10)
        verdicts = asyncio.run(run_audit(settings, since, maildir))
    text = render_audit(verdicts)
    (folder / journal.AUDIT).write_text(text + "\n")
    print(text)
    if maildir is None:
        run["notes"].append("the audit did not read the SMTP sink's Maildir (none given)")
    accepted = run.get("settle", {}).get("orders accepted")
    if accepted is not None and verdicts[0].checked != accepted:
        run["notes"].append(
            f"the audit checked {verdicts[0].checked} orders created since the start, the "
            f"shoppers saw {accepted} accepted: checkouts in flight when Locust stopped their "
            "user, or other clients of the same stack"
        )
    return all(verdict.ok for verdict in verdicts)


def link_latest(out: Path, folder: Path) -> None:
    """`var/surge/latest` points at the newest run."""
    latest = out / "latest"
    if latest.is_symlink() or latest.exists():
        latest.unlink()
    latest.symlink_to(folder.name)


if __name__ == "__main__":
    sys.exit(main())
