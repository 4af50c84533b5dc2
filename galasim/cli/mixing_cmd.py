"""``galasim mixing``: spectra, contraction and ε-ball constants of gossip topologies.

One table row per (topology, agents) combination; the columns are explained in ``--help``.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from galasim._validation import SEED_MAX, choice, integer, parse_integer, positive
from galasim.cli.output import EXIT_STATUS, check_output_file

FORMATS = ("table", "csv", "json")

COLUMNS = (
    "topology", "agents", "weights", "tau", "slem", "spectral_gap", "averaging_time", "dobrushin",
    "C", "q", "log10_epsilon_per_unit", "epsilon_data_per_unit", "log10_epsilon", "epsilon_data",
)

EPILOG = """\
columns (W: the weight matrix; with --tau > 0, its delay-augmented matrix of n(tau+1) rows in
which every message is tau iterations old; for a time-varying schedule of period P, per-iteration
values of the period product Phi):
  slem                    second-largest eigenvalue modulus of W (schedules: slem(Phi)^(1/P))
  spectral_gap            1 - slem
  averaging_time          iterations for slem^T <= 0.01 (schedules: whole periods, P x that of Phi)
  dobrushin               Dobrushin coefficient tau_1(W) (schedules: tau_1(Phi)^(1/P))
  C, q                    closed-form constants of the eps-ball theorem, eps = lr L C / (1 - q)
                          (see galasim.mixing.epsilon_bound); C is inf beyond float64
  log10_epsilon_per_unit  log10(eps / (lr L)) of the closed form: astronomically large, so log10
  epsilon_data_per_unit   eps_data / (lr L) = 2 sum_m tau_1(W^m): the data-dependent certificate
                          (NaN when n(tau+1) > 512 or the weights are not row-stochastic)
  log10_epsilon, epsilon_data
                          the two bounds for the given --lr and --L
The bound columns are NaN for weights outside the theorem (push-sum, or negative best-constant /
fdla weights). In JSON output, inf and NaN are written as null.
"""


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Show defaults, and keep the column table of the epilog as written."""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``galasim mixing`` on the dispatcher's subparsers."""
    parser = subparsers.add_parser(
        "mixing",
        help="SLEM, spectral gap, averaging time and epsilon-ball constants of topologies",
        description="Analyse gossip topologies: one row per combination of --topology and --agents.",
        epilog=EPILOG + EXIT_STATUS,
        formatter_class=_HelpFormatter,
    )
    parser.add_argument(
        "--topology", default="ring",
        help="comma-separated topology names, from galasim.topology.NAMES: ring, ring-undirected, "
             "torus, hypercube, complete, exponential, one-peer-exponential, random-regular, "
             "erdos-renyi",
    )
    parser.add_argument("--agents", default="16", help="comma-separated numbers of agents (>= 2)")
    parser.add_argument(
        "--weights", default="uniform",
        help="weight rule, from galasim.mixing.WEIGHTS: uniform, metropolis, lazy, max-degree, "
             "push-sum, best-constant, fdla",
    )
    parser.add_argument("--tau", type=int, default=0, help="message delay bound in iterations (>= 0)")
    parser.add_argument("--peers", type=int, default=1, help="peers per agent of ring topologies")
    parser.add_argument("--seed", type=int, default=0, help="seed of random topologies")
    parser.add_argument("--lr", type=float, default=7e-4, help="learning rate alpha (> 0)")
    parser.add_argument("--L", type=float, default=1.0, help="update bound: ||delta|| <= lr L (> 0)")
    parser.add_argument(
        "--format", choices=FORMATS, default=argparse.SUPPRESS,
        help="output format (default: from the --out extension, .csv or .json, else table)",
    )
    parser.add_argument("--out", default=None, help="write to this file (atomically) instead of stdout")
    parser.set_defaults(func=run)
    return parser


def _split(text: str, option: str) -> list[str]:
    items = [item.strip() for item in text.split(",")]
    if not all(items):
        raise ValueError(f"{option} must be a comma-separated list without empty items; got {text!r}")
    return items


def _agents(text: str) -> list[int]:
    return [parse_integer("--agents", item, 2) for item in _split(text, "--agents")]


def _output_format(args: argparse.Namespace) -> str:
    if hasattr(args, "format"):
        return args.format
    suffix = Path(args.out).suffix.lower() if args.out else ""
    return {".csv": "csv", ".json": "json"}.get(suffix, "table")


def _row(name: str, n: int, args: argparse.Namespace) -> dict:
    from galasim import mixing, topology

    built = topology.build(name, n, peers=args.peers, seed=args.seed)
    if topology.is_schedule(built):
        if n > mixing.DENSE_LIMIT:
            raise ValueError(
                f"{name}: time-varying topologies are analysed through their period product, "
                f"which is dense; use at most {mixing.DENSE_LIMIT} agents (got {n})"
            )
        mats = [mixing.mixing_matrix(built.graph(t), args.weights) for t in range(built.period)]
    else:
        mats = [mixing.mixing_matrix(built, args.weights)]
    period = len(mats)
    augmented = [mixing.delay_augmented(M, args.tau) for M in mats]
    phi = mixing.product(augmented, 0, period)
    row = {
        "topology": name, "agents": n, "weights": args.weights, "tau": args.tau,
        "slem": mixing.slem(phi) ** (1.0 / period),
    }
    row["spectral_gap"] = 1.0 - row["slem"]
    row["averaging_time"] = period * mixing.averaging_time(phi)
    row["dobrushin"] = mixing.dobrushin(phi) ** (1.0 / period) if mixing.is_row_stochastic(phi) else math.nan
    if all(mixing.is_row_stochastic(M) for M in mats):
        bound = mixing.epsilon_bound(built, args.lr, args.L, tau=args.tau, weights=args.weights)
        unit = args.lr * args.L
        row.update(
            C=bound.C, q=bound.q, log10_epsilon_per_unit=bound.log10_epsilon - math.log10(unit),
            epsilon_data_per_unit=bound.epsilon_data / unit, log10_epsilon=bound.log10_epsilon,
            epsilon_data=bound.epsilon_data,
        )
    else:  # push-sum, or signed weights: outside the theorem, nothing is claimed
        row.update({column: math.nan for column in COLUMNS[8:]})
    return row


def _render(rows: list[dict], fmt: str) -> str:
    import pandas as pd

    table = pd.DataFrame(rows, columns=list(COLUMNS))
    if fmt == "csv":
        return table.to_csv(index=False)
    if fmt == "json":
        return table.to_json(orient="records", indent=2, double_precision=15) + "\n"
    return table.to_string(index=False, float_format=lambda v: f"{v:.6g}") + "\n"


def run(args: argparse.Namespace) -> int:
    """Compute the table and print it, or write it to ``--out``."""
    from galasim import mixing, topology
    from galasim.atomic import atomic_write_text

    names = [choice("--topology", name, topology.NAMES) for name in _split(args.topology, "--topology")]
    agents = _agents(args.agents)
    choice("--weights", args.weights, mixing.WEIGHTS)
    integer("--tau", args.tau, 0)
    integer("--peers", args.peers, 1)
    integer("--seed", args.seed, 0, SEED_MAX)
    positive("--lr", args.lr)
    positive("--L", args.L)
    if args.out:
        check_output_file(args.out)
    fmt = _output_format(args)
    text = _render([_row(name, n, args) for name in names for n in agents], fmt)
    if args.out:
        atomic_write_text(args.out, text)
        print(f"galasim mixing: wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
