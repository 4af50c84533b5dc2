"""The closed-form epsilon of a simulated run, proven in the run's own clock.

Theorem (galasim's; the method is the agreement argument of Bertsekas & Tsitsiklis, *Parallel
and Distributed Computation*, 1989, Section 7.3, with Dobrushin's ergodicity coefficient; full
derivation in ``docs/simulation.md``). Count every update and every mix of any agent as one
*action* (the global index of the asynchronous run's state changes). Suppose that, in this clock,

* (A1) every update has norm ``<= alpha L``;
* (A2) every weight of a realised mix is ``>= beta`` (GALA's uniform weights: ``beta = 1/(m+1)``
  for the largest number ``m`` of messages mixed at once);
* (A3) every window of ``B`` consecutive actions consumes, on every edge of a strongly connected
  graph ``H`` over the agents, at least one message;
* (A4) every consumed message is at most ``tau`` actions old (mix action minus the writer's last
  action before the write).

Then, for identical initialisation, at every time ``max_i ||x_i - mean|| <= diameter <= epsilon``,

    epsilon = alpha L T / beta^T,   T = (n - 1)(tau + B) + tau.

For a simulated run the constants are *measured* (a posteriori): beta from the largest mix,
tau from every consumption, and B = 1 + the longest stretch of actions without a consumption on
some edge of H = the live graph at the end (stretches before the first and after the last use
included). The bound is therefore proven for the run that was observed, not for other runs of
the same configuration. It is valid and astronomically loose; ``log10_epsilon`` is reported since
``epsilon`` overflows float64.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import networkx as nx
import numpy as np

from galasim.gossip import ALLREDUCE, PUSH_SUM, Protocol
from galasim.sim.spec import EngineSpec


@dataclass(frozen=True)
class RunEpsilon:
    """epsilon of one run and the constants it was computed from (all in actions)."""

    epsilon: float
    log10_epsilon: float
    beta: float
    tau: int
    B: int
    T: int
    note: str = ""


def connectivity_window(raw: dict, spec: EngineSpec) -> int | None:
    """B of (A3) over the live graph at the end, or None when that graph is not strongly connected."""
    on = raw.get("edge_on", np.ones(len(spec.edge_src), dtype=bool))  # the repaired topology
    live = ~raw["removed"] & on & ~raw["crashed"][spec.edge_src] & ~raw["crashed"][spec.edge_dst]
    alive = np.flatnonzero(~raw["crashed"])
    graph = nx.DiGraph()
    graph.add_nodes_from(alive.tolist())
    graph.add_edges_from(zip(spec.edge_src[live].tolist(), spec.edge_dst[live].tolist()))
    if len(alive) < 2 or not nx.is_strongly_connected(graph):
        return None
    tail = raw["actions"] - raw["last_use"][live]
    return 1 + int(np.maximum(raw["max_avoid"][live], tail).max())


def epsilon_for_run(raw: dict, spec: EngineSpec, proto: Protocol) -> RunEpsilon:
    """The theorem's epsilon for this run (see the module docstring).

    All-reduce averages exactly (epsilon = 0); push-sum's column-stochastic mixing is outside the
    theorem (NaN: nothing is claimed).
    """
    if proto.code == ALLREDUCE:
        return RunEpsilon(0.0, -math.inf, 1.0, 0, 1, 0, "exact averaging")
    if proto.code == PUSH_SUM:
        return RunEpsilon(math.nan, math.nan, math.nan, 0, 0, 0, "push-sum is outside the theorem")
    n = int((~raw["crashed"]).sum())
    tau = int(raw["tau_actions"])
    beta = 1.0 / (raw["max_fresh"] + 1)
    B = connectivity_window(raw, spec)
    if B is None:
        return RunEpsilon(math.inf, math.inf, beta, tau, 0, 0, "the live graph is not strongly connected")
    T = (n - 1) * (tau + B) + tau
    log10_epsilon = math.log10(spec.step * T) - T * math.log10(beta)
    epsilon = 10.0 ** log10_epsilon if log10_epsilon < 308 else math.inf
    return RunEpsilon(epsilon, log10_epsilon, beta, tau, B, T)
