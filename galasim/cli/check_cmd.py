"""``galasim check``: run the claim checks of ``proofs_checks/`` and write a Markdown report with plots."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from galasim._validation import INT64_MAX, integer
from galasim.cli.output import EXIT_STATUS, HelpFormatter, check_output_dir

EPILOG = """\
claims:
  C1  products of the mixing matrices contract as mixing.contraction says (C q^(k-s), q = SLEM)
  C2  empirical <= certificate and empirical <= epsilon whenever (A1)-(A4) hold (grid + random
      configurations); epsilon's constants re-derived from the event log
  C3  the empirical distance, the certificate and epsilon scale linearly in alpha and L
  C4  necessity: unbounded staleness with lost links, or a crash, makes the distance grow without
      bound, and galasim reports the assumption as violated
  C5  efficiency: under stragglers and delays GALA completes more iterations per unit time than
      all-reduce
  C6  deadlock: how often the paper's protocol deadlocks (by topology and sync_freq); galasim's
      gala-resend never does on static graphs; every run ends
  C7  the Cython engine and the pure-Python reference agree on every number and every event
      (2,000 random configurations; --quick: 40)

output, in --out:
  report.md      every claim's verdict, table, notes and plots
  c*.png         the plots;  C*_runs.csv  one row per simulated run where a table aggregates them

examples:
  galasim check --quick
  galasim check --only C2,C4 --seed 3 --out results/check
  python -m proofs_checks.c2_bound --quick      (one claim, without the report)
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``galasim check`` on the dispatcher's subparsers."""
    parser = subparsers.add_parser(
        "check",
        help="check the claims of the theory (C1-C7) and write a Markdown report with plots",
        description="Run the executable checks of proofs_checks/, one per claim of the GALA theory; "
        "print each claim's table, write a Markdown report with plots, and exit 1 if a claim fails.",
        epilog=EPILOG + EXIT_STATUS,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--quick", action="store_true",
                        help="small configurations: a few seconds per claim instead of up to a minute")
    parser.add_argument("--only", metavar="LIST", default=None,
                        help="comma-separated claims to run, e.g. C1,C3 (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="base seed of every simulation (0 to 2**63 - 1)")
    parser.add_argument("--out", type=Path, default=Path("galasim-check"),
                        help="directory for report.md, the plots and the per-run tables")
    parser.set_defaults(func=run)
    return parser


def selected(only: str | None, names: list[str]) -> list[str]:
    """The claims named by ``--only`` in run order (all when None); a clear error for unknown names."""
    if only is None:
        return list(names)
    wanted = [part.strip().upper() for part in only.replace(";", ",").split(",") if part.strip()]
    wanted = [w if w.startswith("C") else f"C{w}" for w in wanted]
    unknown = [w for w in wanted if w not in names]
    if unknown or not wanted:
        raise ValueError(
            f"--only {only!r}: unknown claim(s) {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(names)}"
        )
    return [n for n in names if n in wanted]


def run(args: argparse.Namespace) -> int:
    import proofs_checks as checks
    from proofs_checks import common

    # The checks derive their seeds as seed + small offsets: int64 leaves room below uint64.
    integer("--seed", args.seed, 0, INT64_MAX)
    check_output_dir(args.out)
    common.use_agg()
    names = selected(args.only, list(checks.CHECKS))
    results = []
    for index, name in enumerate(names, start=1):
        module = checks.load(name)
        print(f"[{index}/{len(names)}] {name} running: {module.CLAIM}", file=sys.stderr, flush=True)
        started = time.perf_counter()
        try:
            result = module.run(quick=args.quick, seed=args.seed)
        except Exception as exc:  # one broken check must not hide the others' verdicts
            result = common.failed_result(name, module.CLAIM, exc)
            result.seconds = time.perf_counter() - started
        results.append(result)
        print(f"[{index}/{len(names)}] {name} {result.status} ({result.seconds:.1f} s)", file=sys.stderr, flush=True)
        print(common.render(result))
        print()
    report = common.write_report(results, args.out, quick=args.quick, seed=args.seed)
    failed = [r.name for r in results if not r.passed]
    verdict = f"FAIL ({', '.join(failed)})" if failed else "PASS"
    print(f"galasim check: {verdict}; report: {report}")
    return 1 if failed else 0
