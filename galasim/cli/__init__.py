"""The ``galasim`` command line.

Each subcommand lives in its own module of this package and exposes ``add_parser(subparsers)``
(which sets ``func`` on its parser); heavy imports happen inside the command, so ``--help`` is fast.

Every error reaches the user as one line on stderr, ``galasim COMMAND: error: WHAT; WHAT TO DO``,
never as a traceback, with the exit status of :data:`galasim.cli.output.EXIT_STATUS`.
"""
from __future__ import annotations

import argparse
import errno
import os
import sys

from galasim.cli import bench_cmd, check_cmd, evaluate_cmd, mixing_cmd, plot_cmd, sweep_cmd, train_cmd
from galasim.cli.output import EXIT_STATUS, FAILURE, INTERRUPTED, USAGE

COMMANDS = (mixing_cmd, sweep_cmd, check_cmd, bench_cmd, train_cmd, evaluate_cmd, plot_cmd)

# What to do about the OS errors a user can fix.
_OS_ADVICE = {
    errno.ENOSPC: "free some space or choose another location",
    errno.EDQUOT: "free some space or choose another location",
    errno.EACCES: "check its permissions or choose another location",
    errno.EPERM: "check its permissions or choose another location",
    errno.EROFS: "the file system is read-only: choose another location",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="galasim",
        description="Simulate, check and analyse Gossip-based Actor-Learner Architectures (GALA).",
        epilog=EXIT_STATUS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def describe(exc: BaseException) -> str:
    """One line for ``exc``: an OS error names its path and what to do about it."""
    if isinstance(exc, OSError) and exc.strerror:
        where = f"{exc.filename}: " if exc.filename else ""
        advice = _OS_ADVICE.get(exc.errno)
        text = f"{where}{exc.strerror}" + (f"; {advice}" if advice else "")
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())  # messages of parsers and OS layers may span lines


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"galasim {args.command}: interrupted", file=sys.stderr)
        return INTERRUPTED
    except (ValueError, TypeError, ImportError) as exc:
        # Bad values, kinds, files and missing optional dependencies: the command must change.
        return _error(args.command, describe(exc), USAGE)
    except (OSError, MemoryError, RuntimeError) as exc:
        return _error(args.command, describe(exc), FAILURE)
    except Exception as exc:
        if os.environ.get("GALASIM_TRACEBACK"):
            raise
        message = f"internal error ({type(exc).__name__}: {describe(exc)}); please report it"
        return _error(args.command, message, FAILURE)


def _error(command: str, message: str, status: int) -> int:
    print(f"galasim {command}: error: {message}", file=sys.stderr)
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
