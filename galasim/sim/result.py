"""The result of one simulation: a flat summary and a sampled trajectory."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

TRAJECTORY_COLUMNS = ("time", "distance", "diameter", "certificate")
# The diameter of a sampled state costs O(n^2 d). Up to MAX_STORED_DOUBLES the engines keep the
# sampled states and compute the diameters of the samples that survive once, at the end (cheap);
# beyond, they compute it when a state is sampled, only while n^2 d <= MAX_SAMPLED_WORK (memory
# must never scale with samples x n x d: real learners have millions of parameters).
MAX_DIAMETER_AGENTS = 256
MAX_STORED_DOUBLES = 1 << 22
MAX_SAMPLED_WORK = 10**6


def diameter_policy(n: int, d: int, samples: int) -> str | None:
    """How the engines get sampled diameters: ``"store"``, ``"sample"``, or None (reported NaN)."""
    if n > MAX_DIAMETER_AGENTS:
        return None
    if (2 * samples + 1) * n * d <= MAX_STORED_DOUBLES:
        return "store"
    return "sample" if n * n * d <= MAX_SAMPLED_WORK else None


def diameter(state: np.ndarray) -> float:
    """max_ij ||x_i - x_j|| of the rows of ``state``."""
    from scipy.spatial.distance import pdist

    return float(pdist(state).max()) if len(state) > 1 else 0.0


@dataclass
class SimResult:
    """What :func:`galasim.simulate` returns.

    Attributes
    ----------
    config : dict
        The normalised arguments (model objects rendered as their grammar strings).
    summary : dict
        Scalars: ``empirical`` (sup over observations of max_i ||x_i - mean||), ``certificate``,
        ``epsilon``, ``bound_holds``, ``assumptions_hold``, ``violated``, staleness, iteration
        counts, ``virtual_time``, ``throughput`` and ``throughput_vs_allreduce``, event and message
        counts, ``events_per_second``, ``deadlock``... (see the README's table of summary fields).
    trajectory : pandas.DataFrame
        A sample of the observations: ``time``, ``distance`` (max_i ||x_i - mean||), ``diameter``
        (max_ij ||x_i - x_j||, for n <= MAX_DIAMETER_AGENTS) and ``certificate`` (the bound in force at that time).
    state : numpy.ndarray
        Final parameters, one row per agent (de-biased x/w for push-sum).
    events : pandas.DataFrame or None
        With ``record_events=True``, every event in processing order (:mod:`galasim.sim.events`).
    edges : pandas.DataFrame or None
        ``src`` and ``dst`` of every edge, indexed by the edge ids of ``events``.
    """

    config: dict[str, Any]
    summary: dict[str, Any]
    trajectory: pd.DataFrame
    state: np.ndarray = field(repr=False)
    diagnostics: dict[str, Any] = field(default_factory=dict, repr=False)
    events: pd.DataFrame | None = field(default=None, repr=False)
    edges: pd.DataFrame | None = field(default=None, repr=False)

    def __str__(self) -> str:
        s = self.summary
        holds = {True: "holds", False: "VIOLATED", None: "not claimed"}[s["bound_holds"]]
        lines = [
            f"{self.config['protocol']} on {self.config['topology']} "
            f"(n={self.config['agents']}, d={self.config['dim']}, seed={self.config['seed']})",
            f"  empirical  {s['empirical']:.6g}   certificate  {s['certificate']:.6g}   "
            f"epsilon  {s['epsilon']:.6g}   bound {holds}",
            f"  iterations/agent  min {s['iterations_min']}  mean {s['iterations_mean']:.1f}   "
            f"virtual time {s['virtual_time']:.6g}   throughput x{s['throughput_vs_allreduce']:.3f} all-reduce",
            f"  events {s['events']}  ({s['events_per_second']:.3g}/s)   messages sent {s['messages_sent']} "
            f"skipped {s['messages_skipped']} dropped {s['messages_dropped']}   max staleness {s['max_staleness']}",
        ]
        if s.get("stopped"):
            lines.append(f"  STOPPED ({s['stopped']}): {s['diagnosis']}")
        if s["violated"]:
            lines.append(f"  assumptions violated: {s['violated']}")
        return "\n".join(lines)
