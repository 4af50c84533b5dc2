"""``galasim sweep``: run a grid of simulations in parallel, resumably; plot and summarise it."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from galasim._validation import workers
from galasim.cli.output import EXIT_STATUS, HelpFormatter, check_output_dir
from galasim.sweep import DEFAULT_GRID
from galasim.sweep.grid import (
    DEFAULT_SEEDS,
    PARAMETERS,
    Grid,
    parse_seeds,
    read_grid_file,
    split_list,
)


def _listed(values: list) -> str:
    return " and ".join(map(str, values))


EPILOG = f"""\
lists:
  Every parameter flag takes a list: --agents 8,32 --protocol gala,allreduce.
  Values are separated by commas, by ';' and by spaces (--delays 0 1 2). A model string keeps its
  own commas: after a name:args value, the pieces that do not start with a letter are its
  arguments, so --delays 0,0.5,uniform:0.5,1.5,lognormal:1,0.5 is four delays. To put a plain
  number after a model string, separate it with ';' or a space: --delays 'uniform:0.5,1.5;2'.

grid files:
  --grid FILE.yaml (or .toml) maps parameter names, and seeds, to lists:
      protocol: [gala, allreduce]
      delays: [0, 0.5, 2, "uniform:0.5,1.5"]
      seeds: 5
  Flags override the file's keys. With neither parameter flags nor --grid, the built-in study
  runs: GALA on a directed ring vs all-reduce, agents {_listed(DEFAULT_GRID["agents"])}, delays
  {min(DEFAULT_GRID["delays"])} to {max(DEFAULT_GRID["delays"])}, {DEFAULT_GRID["seeds"]} seeds (galasim.sweep.DEFAULT_GRID).

output, in --out:
  results.parquet  one row per cell (its id hashes the configuration and seed), written atomically
                   as cells finish; running the same sweep again skips finished cells, and failed
                   ones unless --retry-errors. Ctrl-C or kill saves what finished.
  summary.csv      mean and std over seeds per configuration (also printed)
  distance_vs_delay.png, throughput_vs_delay.png

examples:
  galasim sweep
  galasim sweep --delays 0,0.5,1,2,4,8 --topology ring,exponential --agents 8,32 \\
                --protocol gala,allreduce --seeds 5 --out results/
  galasim sweep --grid study.yaml --backend dask --address tcp://10.0.0.5:8786
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``galasim sweep`` on the dispatcher's subparsers."""
    parser = subparsers.add_parser(
        "sweep",
        help="run a grid of simulations in parallel (resumable), then plot and summarise it",
        description="Run every combination of the listed simulate() parameters, for each seed, in "
        "parallel; store each cell as it finishes; plot distance and throughput against delay.",
        epilog=EPILOG + EXIT_STATUS,
        formatter_class=HelpFormatter,
    )
    grid = parser.add_argument_group("grid (each parameter flag takes a list, see 'lists' below)")
    grid.add_argument("--grid", type=Path, metavar="FILE", help="YAML or TOML grid file")
    for name, parameter in PARAMETERS.items():
        grid.add_argument(
            f"--{name.replace('_', '-')}",
            dest=name,
            nargs="+",
            metavar="LIST",
            # SUPPRESS: an absent flag leaves no attribute, which is how a given flag is told apart.
            default=argparse.SUPPRESS,
            help=parameter.doc + _default_note(parameter.default),
        )
    grid.add_argument(
        "--seeds",
        metavar="N|LIST",
        help="N runs seeds 0..N-1; a comma list (3,7 or 7,) runs exactly those seeds "
        f"[default: the grid file's, else {DEFAULT_SEEDS}]",
    )
    run_options = parser.add_argument_group("running")
    run_options.add_argument(
        "--out", type=Path, default=Path("results/sweep"), help="output directory"
    )
    run_options.add_argument(
        "--backend", choices=("loky", "dask"), default="loky",
        help="loky: processes on this machine; dask: the cluster at --address",
    )
    run_options.add_argument("--address", help="Dask scheduler address, e.g. tcp://10.0.0.5:8786")
    run_options.add_argument(
        "--jobs", type=int, default=-1,
        help="loky worker processes: -1 (one per core) or 1 to 4 per core"
    )
    run_options.add_argument(
        "--retry-errors", action="store_true", help="run the cells stored as errors again"
    )
    run_options.add_argument("--no-plots", action="store_true", help="skip the figures")
    parser.set_defaults(func=run)
    return parser


def _default_note(default: object) -> str:
    # A None default is explained by the parameter's own help (it means "none" for faults but "the
    # protocol's own" for sync_freq), so only concrete defaults are shown.
    return "" if default is None else f" [simulate default: {default}]"


def build_grid(args: argparse.Namespace) -> Grid:
    """The grid the command line asks for: the grid file or the built-in study, then the flags.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed ``galasim sweep`` arguments.

    Returns
    -------
    Grid

    Raises
    ------
    ValueError
        For any bad value, name or file (see :class:`galasim.sweep.Grid`).

    Examples
    --------
    >>> args = argparse.Namespace(grid=None, seeds="2", delays=["0,1", "uniform:0.5,1.5"])
    >>> build_grid(args).to_mapping()
    {'delays': [0.0, 1.0, 'uniform:0.5,1.5'], 'seeds': [0, 1]}
    """
    flags = {
        name: [value for word in getattr(args, name) for value in split_list(word)]
        for name in PARAMETERS
        if hasattr(args, name)
    }
    if args.grid is not None:
        base = {key.replace("-", "_"): value for key, value in read_grid_file(args.grid).items()}
    else:
        base = {} if flags else dict(DEFAULT_GRID)
    mapping = base | flags
    if args.seeds is not None:
        mapping["seeds"] = parse_seeds(args.seeds)
    return Grid.from_mapping(mapping)


def run(args: argparse.Namespace) -> int:
    """Run the sweep, print the summary table, write summary.csv and the figures.

    Returns
    -------
    int
        The exit status: 0 when every cell succeeded, 1 when some failed (they are stored as error
        rows), 130 when interrupted (the finished cells are stored; the same command resumes).
    """
    from galasim.sweep import (
        RESULTS_FILE,
        format_summary,
        plot_sweep,
        run_sweep,
        summarize,
        write_summary,
    )

    workers("--jobs", args.jobs)
    grid = build_grid(args)
    check_output_dir(args.out)
    print(f"galasim sweep: {len(grid)} cells into {args.out}", file=sys.stderr)
    try:
        results = run_sweep(
            grid, args.out, backend=args.backend, address=args.address, n_jobs=args.jobs,
            retry_errors=args.retry_errors,
        )
    except KeyboardInterrupt:
        return 130
    table = summarize(results)
    print(format_summary(table))
    written = [args.out / RESULTS_FILE, write_summary(table, args.out)]
    if not args.no_plots:
        written += plot_sweep(results, args.out)
    print("wrote " + ", ".join(str(path) for path in written))
    failed = results[results["status"] == "error"]
    if len(failed):
        print(
            f"galasim sweep: {len(failed)} of {len(results)} cells failed, the first with: "
            f"{failed['error'].iloc[0]}\n"
            "fix the cause, then run the same command with --retry-errors",
            file=sys.stderr,
        )
        return 1
    return 0
