"""`python -m bench.isolation`: the options, then both deployments, then the section."""

from __future__ import annotations

import argparse
import asyncio
import os
import time

os.environ.setdefault("DOORBUSTER_TEST_SLOT", "8")  # its own ports, vhost and databases

from bench.isolation import __doc__ as DESIGN
from bench.isolation.cells import OURS, SINGLE, Cell
from bench.isolation.load import cells_of
from bench.isolation.report import report
from bench.isolation.stacks import clean_up, ours, single_queue, start
from bench.report import stamp, write_section
from devtools.harness.stack import ROOT


def run(args: argparse.Namespace) -> list[Cell]:
    os.chdir(ROOT)
    cells: list[Cell] = []
    builders = {OURS: ours, SINGLE: single_queue}
    for deployment in args.deployments.split(","):
        stack = builders[deployment]()
        try:
            start(stack, deployment, args.nice_bulk)
            cells += asyncio.run(cells_of(stack, deployment, args))
        finally:
            clean_up(stack, deployment)
    return cells


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.isolation", description=DESIGN)
    parser.add_argument("--mails", type=int, default=200_000, help="campaign backlog")
    parser.add_argument("--rate", type=float, default=5.0, help="checkouts per second")
    parser.add_argument("--seconds", type=float, default=60.0, help="of load per condition")
    parser.add_argument("--cap", type=float, default=20.0, help="wait for a window's orders")
    parser.add_argument("--stripe-latency-ms", type=float, default=200.0)
    parser.add_argument("--deployments", default=f"{OURS},{SINGLE}", help="for development")
    parser.add_argument(
        "--nice-bulk",
        type=int,
        default=0,
        help="run the bulk pool and the SMTP sink at this nice value (an experiment: not what "
        "`make up` does)",
    )
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    command = (
        f"python -m bench.isolation --mails {args.mails} --rate {args.rate:g} "
        f"--seconds {args.seconds:g} --cap {args.cap:g}"
        + (f" --nice-bulk {args.nice_bulk}" if args.nice_bulk else "")
    )
    stamped, started = stamp(command), time.monotonic()  # date and load at the start
    cells = run(args)
    body = report(cells, args, stamped, (time.monotonic() - started) / 60)
    print(body)
    if not args.no_write:
        print(f"wrote {write_section('Priority isolation', body)}")


if __name__ == "__main__":
    main()
