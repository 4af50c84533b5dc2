"""The flat, typed description of one simulation that both engines consume.

:func:`galasim.simulate` validates the user's arguments and lowers them into an
:class:`EngineSpec`: integer codes, contiguous NumPy arrays and the edge layout. The Cython
scheduler reads it into C memory; the reference simulator reads the very same object, which is
what makes the differential tests meaningful.

Edge layout: edges are numbered in receiver order (``edge_dst`` ascending, then ``edge_src``), so
agent i's in-edges are ``in_indptr[i]:in_indptr[i+1]``; ``out_edges[out_indptr[j]:out_indptr[j+1]]``
are the ids of agent j's out-edges. ``active[t % period, e]`` says whether edge e carries agent
``edge_src[e]``'s message of iteration t (all ones for a static graph).

Crash-and-repair (``docs/simulation.md``): the edge arrays hold every edge that can ever exist,
the original ones (``edge_on[e] = 1`` at the start) and the bypasses the repair rule may add
(``galasim.gossip.repair.possible_edges``, off at the start); the engines switch them on and off.
Explicit faults are ``(fault_time, fault_kind, fault_target)`` rows, pushed in this order.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np


FAULT_CRASH, FAULT_REJOIN, FAULT_LINK = range(3)


@dataclass
class EngineSpec:
    protocol: int
    n: int
    dim: int
    iterations: int
    lr: float
    L: float
    update: int
    sync_freq: int              # -1: unbounded
    mix_any: int                # 1 for time-varying schedules (mix whatever is fresh)
    resend: int                 # 1: gala-resend (galasim's extension), 0: the reference protocol
    in_indptr: np.ndarray       # int64[n+1]
    edge_src: np.ndarray        # int64[E]
    edge_dst: np.ndarray        # int64[E]
    out_indptr: np.ndarray      # int64[n+1]
    out_edges: np.ndarray       # int64[E]
    active: np.ndarray          # uint8[period, E]
    compute: tuple[int, float, float]
    agent_factor: np.ndarray    # float64[n]
    delay: tuple[int, float, float]
    edge_factor: np.ndarray     # float64[E]
    drop: float
    crash_time: np.ndarray      # float64[n], first crash (inf = never): all-reduce and reports
    link_time: np.ndarray       # float64[E], inf = never
    edge_on: np.ndarray         # uint8[E]: 1 for the original edges, 0 for possible bypasses
    fault_time: np.ndarray      # float64[F]
    fault_kind: np.ndarray      # int64[F]: FAULT_CRASH, FAULT_REJOIN or FAULT_LINK
    fault_target: np.ndarray    # int64[F]: agent (crash, rejoin) or edge (link)
    fault_awaits: np.ndarray    # int8[F]: a crash that a later rejoin of the agent ends
    repair: float               # detection timeout D; -1: perfect detector, no repair
    crash_rate: float           # random crashes per agent and time unit (0: none)
    downtime: float             # a randomly crashed agent rejoins after this long (inf: never)
    targets: np.ndarray         # float64[n, dim] (quadratic model's b_i)
    seed: int
    certificate: int
    samples: int                # trajectory samples to keep (about)
    record_events: int          # 1: keep the event log (galasim/sim/events.py)
    max_events: int             # stop with a diagnosis after this many events
    callback: Callable[[int, int, np.ndarray], Any] | None = None

    @property
    def edges(self) -> int:
        return len(self.edge_src)

    @property
    def step(self) -> float:
        """alpha * L, the bound on every local update's norm (A1)."""
        return self.lr * self.L
