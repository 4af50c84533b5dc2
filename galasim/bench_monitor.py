"""Benchmark of one row of the epsilon-ball monitor of ``galasim train --mode async``.

Every ``log_every`` seconds the parent copies the learners' published parameters out of shared
memory (:func:`galasim.rl.seqlock.read`) and measures their spread (:func:`galasim.rl.monitor.spread`)
on the cores the learners train on. The former row, measured in the same run as the baseline,
copied the rows into a new float32 tensor and converted that into a new float64 one; a float64
copy of four Pong learners is 54 MB, past glibc's largest threshold for reusing freed memory
(32 MB), so each row mapped it afresh and faulted in all its pages. The current row reads into one
float64 buffer that the run keeps and centres it in place.

``galasim bench monitor`` calls :func:`bench_monitor` (docs/benchmarks.md records its output).
"""
from __future__ import annotations

import resource
import statistics
import time

import pandas as pd
import torch

from galasim.bench_dist import NATURE_CNN_PONG_PARAMS
from galasim.rl import seqlock
from galasim.rl.learner import torch_threads
from galasim.rl.monitor import spread

LEARNERS = 4
QUICK_PARAMS = 10_000


def _row_costs(methods: dict, repeats: int) -> dict[str, dict[str, float]]:
    """Per method, medians over ``repeats`` rows (after one warm-up row each): wall and CPU ms,
    page faults. The methods take turns, so that a change in the machine's load hits both."""
    for row in methods.values():
        row()
    samples = {name: {"median_ms": [], "cpu_ms": [], "page_faults": []} for name in methods}
    for _ in range(repeats):
        for name, row in methods.items():
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            start, start_cpu = time.perf_counter(), time.process_time()
            row()
            samples[name]["median_ms"].append(1e3 * (time.perf_counter() - start))
            samples[name]["cpu_ms"].append(1e3 * (time.process_time() - start_cpu))
            samples[name]["page_faults"].append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    return {name: {k: statistics.median(v) for k, v in costs.items()} for name, costs in samples.items()}


def bench_monitor(quick: bool = False, repeats: int = 5) -> pd.DataFrame:
    """Time one monitor row of :data:`LEARNERS` Pong learners, the former one as the baseline.

    Parameters
    ----------
    quick : bool, default False
        Use :data:`QUICK_PARAMS` parameters per learner (a smoke test; the figures mean little)
        instead of the Nature CNN's for Pong.
    repeats : int, default 5
        Timed rows per method (after one warm-up row); the medians are reported.

    Returns
    -------
    pandas.DataFrame
        Columns ``method, learners, params, median_ms, cpu_ms, page_faults, repeats, speedup``
        (``speedup``: the former row's median wall time over this one's).

    Examples
    --------
    >>> table = bench_monitor(quick=True, repeats=1)
    >>> list(table["method"])
    ['former: new float32 copy, new float64 copy', 'reused float64 buffer, centred in place']
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1; got {repeats}")
    dim = QUICK_PARAMS if quick else NATURE_CNN_PONG_PARAMS
    published = torch.randn(LEARNERS, dim, generator=torch.Generator().manual_seed(0)).share_memory_()
    version, ranks = torch.zeros(LEARNERS, dtype=torch.int64), list(range(LEARNERS))
    buffer = torch.empty(LEARNERS, dim, dtype=torch.float64)
    methods = {
        "former: new float32 copy, new float64 copy": lambda: spread(seqlock.read(published, version, ranks)),
        "reused float64 buffer, centred in place":
            lambda: spread(seqlock.read(published, version, ranks, out=buffer), overwrite=True),
    }
    with torch_threads(1):  # as the parent of a run has (galasim/rl/train.py)
        costs = _row_costs(methods, repeats)
    rows = [{"method": name, "learners": LEARNERS, "params": dim, **costs[name], "repeats": repeats}
            for name in methods]
    for row in rows:
        row["speedup"] = rows[0]["median_ms"] / row["median_ms"]
    return pd.DataFrame(rows)
