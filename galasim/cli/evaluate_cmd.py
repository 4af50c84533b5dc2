"""``galasim evaluate RUN_DIR``: true scores of a trained learner."""
from __future__ import annotations

import argparse
import sys

from galasim.cli.output import HelpFormatter


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "evaluate", help="play a trained run and report true episode scores",
        description="Load a learner's checkpoint from a galasim train run folder, play full games "
        "(all lives) and report their unclipped scores.",
        epilog="example:\n  galasim evaluate runs/pong_gala --episodes 10 --video runs/pong.mp4",
        formatter_class=HelpFormatter)
    p.add_argument("run_dir", help="the --out folder of galasim train")
    p.add_argument("--episodes", type=int, default=10, help="games to play (1 to 10,000)")
    p.add_argument("--learner", type=int, default=0, help="which learner's parameters (from 0)")
    p.add_argument("--seed", type=int, default=12345, help="evaluation seed")
    p.add_argument("--deterministic", action="store_true", help="greedy actions instead of sampling")
    p.add_argument("--video", default=None, help="write the agent's view of one simulator to this .mp4")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (2 collapse ~25x when another process holds a core)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from galasim._interrupt import sigterm_as_interrupt
    from galasim.rl.evaluate import MAX_STEPS, evaluate

    with sigterm_as_interrupt():  # kill, like Ctrl-C, leaves no partial video
        result = evaluate(args.run_dir, args.episodes, args.learner, args.seed, args.video,
                          args.deterministic, MAX_STEPS, progress=not args.no_progress, threads=args.threads)
    for k, (ret, length) in enumerate(zip(result.returns, result.lengths)):
        print(f"episode {k}: return {ret:g}  length {length}")
    print(f"mean true return over {len(result.returns)} episodes: {result.mean:.2f} +- {result.std:.2f}")
    if len(result.returns) < args.episodes:  # the agent-step safety bound ended the play
        print(f"galasim evaluate: warning: only {len(result.returns)} of {args.episodes} games ended "
              f"within {MAX_STEPS:,} agent steps", file=sys.stderr)
    return 0
