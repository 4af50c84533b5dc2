"""Benchmark of :func:`galasim.mixing.slem` against the dense LAPACK baseline.

``galasim bench mixing`` calls :func:`bench_slem`; so does ``python -m galasim.bench_mixing``,
which needs no other part of the command line (docs/benchmarks.md records its output).
"""
from __future__ import annotations

import argparse
import math
import statistics
import timeit

import numpy as np
import pandas as pd

from galasim import mixing, topology

TOPOLOGIES = ("ring", "ring-undirected", "torus")
SIZES = (1000, 10_000)
QUICK_SIZES = (100, 400)


def _seconds(call, repeats: int) -> tuple[float, float]:
    """(median, min) wall-clock seconds of ``repeats`` calls, after one warm-up call."""
    call()
    times = timeit.repeat(call, number=1, repeat=repeats)
    return statistics.median(times), min(times)


def bench_slem(quick: bool = False, repeats: int = 5) -> pd.DataFrame:
    """Time ``slem`` on directed rings, undirected rings and tori, with the dense baseline.

    For every topology of :data:`TOPOLOGIES` (uniform weights) and size of :data:`SIZES`,
    ``mixing.slem`` on the sparse matrix is timed; at the smallest size the dense baseline
    ``numpy.linalg.eigvals`` (all eigenvalues of the dense matrix, what one would otherwise do) is
    timed in the same run, and ``speedup_vs_eigvals`` is its median over slem's.

    Parameters
    ----------
    quick : bool, default False
        Use :data:`QUICK_SIZES` (a smoke test; the figures mean little).
    repeats : int, default 5
        Timed calls per measurement (after one warm-up call); the median is reported.

    Returns
    -------
    pandas.DataFrame
        Columns ``topology, agents, method, median_s, min_s, repeats, slem, speedup_vs_eigvals``.

    Examples
    --------
    >>> table = bench_slem(quick=True, repeats=1)
    >>> sorted(set(table["method"]))
    ['numpy.linalg.eigvals', 'slem']
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1; got {repeats}")
    rows = []
    for name in TOPOLOGIES:
        baseline = math.nan
        for n in QUICK_SIZES if quick else SIZES:
            W = mixing.mixing_matrix(topology.build(name, n), sparse=True)
            median, fastest = _seconds(lambda W=W: mixing.slem(W), repeats)
            row = {"topology": name, "agents": n, "method": "slem", "median_s": median,
                   "min_s": fastest, "repeats": repeats, "slem": mixing.slem(W)}
            if math.isnan(baseline):
                dense = W.toarray()
                baseline, dense_fastest = _seconds(lambda: np.linalg.eigvals(dense), repeats)
                rows.append({"topology": name, "agents": n, "method": "numpy.linalg.eigvals",
                             "median_s": baseline, "min_s": dense_fastest, "repeats": repeats,
                             "slem": math.nan, "speedup_vs_eigvals": 1.0})
                row["speedup_vs_eigvals"] = baseline / median
            rows.append(row)
    columns = ["topology", "agents", "method", "median_s", "min_s", "repeats", "slem", "speedup_vs_eigvals"]
    return pd.DataFrame(rows, columns=columns)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Time galasim.mixing.slem against numpy.linalg.eigvals.")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke test")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per measurement")
    args = parser.parse_args(argv)
    table = bench_slem(quick=args.quick, repeats=args.repeats)
    slem_digits = {"slem": "{:.10f}".format}  # SLEMs of large rings differ from 1 in the 8th digit
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}", formatters=slem_digits))


if __name__ == "__main__":
    main()
