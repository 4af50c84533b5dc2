"""``galasim plot RUN ...``: learning curves of ``galasim train`` runs, and a table of their scores."""
from __future__ import annotations

import argparse
from pathlib import Path

from galasim.cli.output import HelpFormatter


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "plot", help="learning curves and scores of galasim train runs",
        description="Plot the mean true return of the last 100 games against frames for each run, "
        "beside the consensus distance of the GALA runs, and print each run's scores (games, mean "
        "of the last 100, best mean of 100 and where).",
        epilog="examples:\n  galasim plot runs/pong_gala4x2 runs/pong_a2c1x8 --out pong.png\n"
        "  galasim plot 'GALA 4x2=runs/pong_gala4x2' 'A2C 1x8=runs/pong_a2c1x8' --out pong.png --csv pong.csv",
        formatter_class=HelpFormatter)
    p.add_argument("runs", nargs="+", metavar="RUN",
                   help="a galasim train --out folder, or LABEL=FOLDER (the label is the folder's name otherwise)")
    p.add_argument("--out", default="curves.png", help="the PNG to write")
    p.add_argument("--csv", default=None, help="also write the scores to this CSV file")
    p.set_defaults(func=run)


def parse_runs(specs: list[str]) -> dict[str, Path]:
    """``{label: folder}`` from ``FOLDER`` or ``LABEL=FOLDER`` arguments; each must be a train run."""
    runs: dict[str, Path] = {}
    for spec in specs:
        label, folder = ("", spec) if Path(spec).is_dir() or "=" not in spec else spec.split("=", 1)
        folder = Path(folder)
        label = label or folder.resolve().name  # "." names the folder too
        if not any((folder / "logs").glob("learner*_episodes.csv")):
            raise ValueError(f"{str(folder)!r} is not a galasim train run folder (no logs/learner*_episodes.csv)")
        if label in runs:
            raise ValueError(f"two runs are labelled {label!r}; label them with LABEL=FOLDER")
        runs[label] = folder
    return runs


def run(args: argparse.Namespace) -> int:
    from galasim.atomic import atomic_write_text
    from galasim.rl.plots import plot_runs, scores

    runs = parse_runs(args.runs)
    table = scores(runs)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    if args.csv:
        atomic_write_text(args.csv, table.to_csv(index=False))
        print(f"wrote {args.csv}")
    print(f"wrote {plot_runs(runs, args.out)}")
    return 0
