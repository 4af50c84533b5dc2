"""Benchmarks of the event scheduler: Cython against the pure-Python reference, in one run.

Rows of the returned table: ``case``, ``engine``, ``events``, ``median_s`` (median wall time over
``repeats`` runs), ``events_per_s`` and ``ratio`` (Cython over reference on the same case).
"""
from __future__ import annotations

import heapq
import math
import statistics
import time
from typing import Callable

import pandas as pd

from galasim.sim import rng


def _median_time(fn: Callable[[], int], repeats: int) -> tuple[float, int]:
    times, count = [], 0
    for _ in range(repeats):
        started = time.perf_counter()
        count = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), count


def _python_hold(pending: int, events: int, seed: int = 0) -> int:
    """The reference twin of ``galasim._scheduler.hold_benchmark`` on ``heapq`` tuples."""
    key = rng.stream_key(seed, rng.DELAY, 0)
    heap = [(-math.log(rng.uniform(key, i)), i, i) for i in range(pending)]
    heapq.heapify(heap)
    seq = pending
    for i in range(events):
        t, _, target = heapq.heappop(heap)
        heapq.heappush(heap, (t - math.log(rng.uniform(key, pending + i)), seq, target))
        seq += 1
    return events


def _simulation(engine: str, **config) -> Callable[[], int]:
    from galasim.sim import simulate

    return lambda: simulate(engine=engine, **config).summary["events"]


def bench_sim(quick: bool = False, repeats: int = 5) -> pd.DataFrame:
    """Measure the scheduler alone ("hold" model) and whole GALA simulations, both engines.

    Parameters
    ----------
    quick : bool
        Tiny sizes (for smoke tests); the figures are then meaningless.
    repeats : int
        Runs per measurement; the median is reported.

    Examples
    --------
    >>> table = bench_sim(quick=True, repeats=1)
    >>> sorted(table["engine"].unique())
    ['cython', 'reference']
    """
    from galasim._scheduler import hold_benchmark

    scale = 0.01 if quick else 1.0
    hold_events = int(2_000_000 * scale)
    ring = dict(topology="ring", agents=64, dim=8, delays=1.0, seed=0, certificate=False)
    ring_iterations = max(20, int(2000 * scale))
    cases = [
        ("hold, 64 pending (scheduler only)",
         lambda: hold_benchmark(64, hold_events), lambda: _python_hold(64, hold_events // 10)),
        ("hold, 4096 pending (scheduler only)",
         lambda: hold_benchmark(4096, hold_events), lambda: _python_hold(4096, hold_events // 10)),
        ("GALA ring n=64 d=8, exp. delays 1 (with payload)",
         _simulation("cython", iterations=ring_iterations, **ring),
         _simulation("reference", iterations=ring_iterations, **ring)),
        ("GALA ring n=64 d=8, exp. delays 1, with certificate",
         _simulation("cython", iterations=ring_iterations, **{**ring, "certificate": True}),
         _simulation("reference", iterations=max(20, ring_iterations // 4), **{**ring, "certificate": True})),
        ("GALA ring n=4096 d=8 x 1000 iterations",
         _simulation("cython", iterations=max(5, int(1000 * scale)), **{**ring, "agents": 4096}), None),
    ]
    rows = []
    for case, fast, slow in cases:
        fast_s, fast_events = _median_time(fast, repeats)
        rows.append({"case": case, "engine": "cython", "events": fast_events, "median_s": fast_s,
                     "events_per_s": fast_events / fast_s})
        if slow is not None:
            slow_s, slow_events = _median_time(slow, repeats)
            rows.append({"case": case, "engine": "reference", "events": slow_events, "median_s": slow_s,
                         "events_per_s": slow_events / slow_s})
    table = pd.DataFrame(rows)
    reference_rate = table[table.engine == "reference"].set_index("case")["events_per_s"]
    table["ratio"] = [
        row.events_per_s / reference_rate[row.case] if row.case in reference_rate.index else math.nan
        for row in table.itertuples()
    ]
    return table
