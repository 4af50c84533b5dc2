"""``galasim bench {sim,mixing,sweep,train,dist,monitor}``: measure, print a table, optionally save it."""
from __future__ import annotations

import argparse
import os
import platform
import sys

from galasim._validation import integer
from galasim.cli.output import EXIT_STATUS, HelpFormatter, check_table_path, write_table


# A median of more repeats than this is no better, only longer.
MAX_REPEATS = 1000


def _machine() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor() or platform.machine()
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="benchmark the scheduler, the mixing analyses, sweep scaling or training",
        description="Measure galasim's hot paths against their baselines, in one run, and print "
        "the medians of several repeats (record them in docs/benchmarks.md).",
        epilog=EXIT_STATUS,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("target", choices=("sim", "mixing", "sweep", "train", "dist", "monitor"),
                        help="sim: Cython scheduler vs reference; mixing: slem; sweep: 1 vs all cores; "
                        "train: A2C 1x16 vs GALA 2x8 and 4x4 (Pong), with SB3's A2C and galasim's former "
                        "implementations as baselines; dist: --mode dist vs async "
                        "(GALA 2x8, Pong) and gloo's exchange time for 1.7M parameters; monitor: one row of the "
                        "epsilon-ball monitor of 4 Pong learners against the former one")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke test (figures meaningless)")
    parser.add_argument("--repeats", type=int, default=5, help="runs per measurement (the median is reported)")
    parser.add_argument("--out", default=None, help="also write the table to this .csv or .json file")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    integer("--repeats", args.repeats, 1, MAX_REPEATS)
    if args.out:
        check_table_path(args.out)  # before minutes of measuring, not after
    print(f"machine: {_machine()}", file=sys.stderr)
    if args.target == "sim":
        from galasim.bench_sim import bench_sim

        table = bench_sim(quick=args.quick, repeats=args.repeats)
    elif args.target == "mixing":
        from galasim.bench_mixing import bench_slem

        table = bench_slem(quick=args.quick, repeats=args.repeats)
    elif args.target == "train":
        from galasim.bench_train import bench_train

        table = bench_train(quick=args.quick, repeats=args.repeats)
    elif args.target == "dist":
        from galasim.bench_dist import bench_dist

        table = bench_dist(quick=args.quick, repeats=args.repeats)
    elif args.target == "monitor":
        from galasim.bench_monitor import bench_monitor

        table = bench_monitor(quick=args.quick, repeats=args.repeats)
    else:
        from galasim.sweep.runner import bench_sweep_scaling

        table = bench_sweep_scaling(quick=args.quick, repeats=args.repeats)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    if args.out:
        write_table(table, args.out)
    return 0
