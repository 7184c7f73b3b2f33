"""Where the CPU goes, per process and per library, for both arms of `bench.e2e`: one window
at a fixed rate with py-spy on every Python process (bench/e2e/pyspy.py), apart from the
measured ladder because py-spy takes CPU of its own.

`python -m bench.e2e.profiled [--rate 15] [--seconds 60] [--arms ours,plain]`; raw stacks in
var/profiles/<arm>/, the summary in docs/benchmarks.md.
"""

from __future__ import annotations

import asyncio
import os

os.environ.setdefault("DOORBUSTER_TEST_SLOT", "9")

from bench.e2e import pyspy
from bench.e2e.__main__ import arguments, both_arms, switch
from bench.e2e.arms import Arm, Ours
from bench.e2e.windows import Window, window
from bench.report import stamp, write_section
from devtools.harness.shop import unique_sku
from devtools.harness.stack import ROOT

TITLE = "End to end: where the CPU goes (py-spy)"
NOT_PYTHON = ("stripe", "smtp")  # stand-ins are Python too, but not what is profiled here


async def profiled(arm: Arm, name: str, rate: float, seconds: float) -> tuple[Window, str]:
    sku = unique_sku("PROF")
    await arm.put_product(sku, stock=10_000_000, price=2500)
    await window(arm, sku, rate=10, seconds=2)  # warm up
    folder = ROOT / "var" / "profiles" / name
    for old in folder.glob("*.txt"):
        old.unlink()
    pids = {k: v for k, v in arm.pids().items() if k not in NOT_PYTHON}
    recorders = pyspy.start(folder, pids, seconds)
    try:
        measured = await window(arm, sku, rate, seconds)
    finally:
        for recorder in recorders:
            recorder.wait(60)
        await arm.close()
    return measured, pyspy.summary(folder)


def section(name: str, measured: Window, table: str) -> str:
    cpu = measured.cpu.table(measured.paid, "paid order") if measured.cpu else ""
    return f"""### {name}

{measured.paid} of {measured.placed} paid at {measured.rate:.0f}/s offered, p95
{measured.p95_s:.2f} s, {measured.system_ms():.1f} system CPU ms per paid order (py-spy running
beside it).

{cpu}

{table}"""


def main() -> None:
    parser = arguments()
    parser.add_argument("--rate", type=float, default=15)
    args = parser.parse_args()
    arms = set(args.arms.split(","))
    parts = []
    with both_arms(args) as (stack, plain):
        if "ours" in arms:
            parts.append(("Doorbuster", *asyncio.run(
                profiled(Ours(stack), "ours", args.rate, args.seconds)
            )))  # fmt: skip
        if "plain" in arms:
            arm = switch(stack, plain)
            parts.append(("plain Celery", *asyncio.run(
                profiled(arm, "plain", args.rate, args.seconds)
            )))  # fmt: skip
    command = f"python -m bench.e2e.profiled --rate {args.rate:g} --seconds {args.seconds:g}"
    body = f"""{stamp(command)}

One window per arm at a fixed rate with py-spy (100 Hz, `--gil`: the thread holding the GIL,
so a share of samples is close to a share of Python CPU time) on every process of the arm;
self time, folded by library and by function. Raw stacks: var/profiles/<arm>/<process>.txt
(`py-spy` raw format; any flamegraph tool reads them).

""" + "\n\n".join(section(*part) for part in parts)
    print(f"wrote {write_section(TITLE, body)}")


if __name__ == "__main__":
    main()
