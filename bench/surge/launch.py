"""Locust as its own process (it patches its process with gevent): its command line, and
a wait that prints a progress line every 10 seconds."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from bench.surge import journal, profile, seed, target

ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILE = Path(__file__).with_name("locustfile.py")


def locust_argv(
    args: argparse.Namespace, urls: dict[str, str], run_id: str, seeded: seed.Seeded, folder: Path
) -> list[str]:
    """Locust's command line: our options (bench/surge/recorder.py) and its own."""
    options = {
        "--host": urls["orders"],
        **{f"--{service}-url": url for service, url in urls.items()},
        "--surge-profile": args.profile,
        "--surge-users": args.users,
        "--surge-duration": args.duration,
        "--surge-spawn-rate": args.spawn_rate,
        "--run-dir": folder,
        "--run-id": run_id,
        "--skus": ",".join(seeded.skus),
        "--flash-sku": seeded.flash_sku,
        "--html": folder / "locust.html",
        "--loglevel": "WARNING",
    }
    if args.ui:
        options |= {"--autoquit": 5, "--web-host": "127.0.0.1", "--web-port": args.web_port}
    argv = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--only-summary"]
    argv += ["--autostart"] if args.ui else ["--headless"]
    for option, value in options.items():
        if value is not None:
            argv += [option, str(value)]
    return argv


def run_locust(
    argv: list[str], plan: profile.Profile, folder: Path, machine: target.MachineSampler
) -> int:
    """Run Locust to the end of the profile. Ctrl-C stops the load (Locust gets it too) and
    the run still settles and reports what it did."""
    process = subprocess.Popen(argv, cwd=ROOT)
    machine.watch(process.pid)
    try:
        return watch(process, plan, folder)
    except KeyboardInterrupt:
        print("interrupted: stopping the load, then settling and reporting what ran")
        return process.wait()


def watch(process: subprocess.Popen[bytes], plan: profile.Profile, folder: Path) -> int:
    """Wait for Locust, printing a progress line every 10 seconds."""
    started = time.monotonic()
    while True:
        try:
            return process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            elapsed = time.monotonic() - started
            stage = plan.at(elapsed)
            accepted = sum(1 for _ in journal.read_csv(folder / journal.ACCEPTED))
            print(
                f"  {elapsed:5.0f} s  {stage.label if stage else 'ending':<14} "
                f"orders accepted so far: {accepted}",
                flush=True,
            )
