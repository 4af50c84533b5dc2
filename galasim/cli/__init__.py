"""The ``galasim`` command line.

Each subcommand lives in its own module of this package and exposes ``add_parser(subparsers)``
(which sets ``func`` on its parser); heavy imports happen inside the command, so ``--help`` is fast.
"""
from __future__ import annotations

import argparse
import sys

from galasim.cli import bench_cmd, check_cmd, evaluate_cmd, mixing_cmd, sweep_cmd, train_cmd

COMMANDS = (mixing_cmd, sweep_cmd, check_cmd, bench_cmd, train_cmd, evaluate_cmd)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="galasim",
        description="Simulate, check and analyse Gossip-based Actor-Learner Architectures (GALA).",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, ImportError) as exc:
        # User errors (bad topology, bad model string, unreadable file...) are reported as one clear
        # line instead of a traceback; programming errors still raise.
        print(f"galasim {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
