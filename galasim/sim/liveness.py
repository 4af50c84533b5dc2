"""Which blocked agents can never mix again: the deadlock test shared by both engines.

A GALA agent blocked in a receive waits for a fresh message on its live in-edges (all of them on
a static graph, any one on a schedule). From a snapshot of the engine's state this module computes
the *frozen* set: the greatest set F of blocked agents such that every agent of F waits for a
message that can only come after some agent of F has acted again. It is the greatest fixed point
of "r stays in F while r is not satisfiable given F", starting from all blocked agents, where an
in-edge ``e = j -> r`` is satisfiable when

* its message has arrived or is in flight and will arrive (``ARRIVED``, ``IN_FLIGHT``), or
* ``j`` can still write on it: ``j`` is not in F and, under the reference rule (write on all
  live out-edges or none), some iteration of ``j``'s period activates ``e`` while every out-edge
  of ``j`` that holds a message a frozen receiver will never read is inactive; under
  ``gala-resend`` (per-edge writes, owed writes served while blocked) ``j`` is not in F or owes
  ``e`` a write.

Soundness: nobody in F can act first, so nobody in F ever acts again; a run with an unfinished
agent in F can never complete and is stopped. Agents outside F are only *possibly* live; a run that
gets stuck later is caught at a later check (an agent that can never mix blocks within
``sync_freq + 1`` updates and joins F), and the event budget is the last resort.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EMPTY, IN_FLIGHT, ARRIVED, LOSING = range(4)   # message-slot states (LOSING: in flight, dropped)
RUNNING, BLOCKED, CRASHED = range(3)           # agent states


@dataclass
class Snapshot:
    """The part of an engine's state the test reads (arrays are views, not copies)."""

    status: np.ndarray      # int8[n]
    slot: np.ndarray        # int8[E]
    owed: np.ndarray        # int8[E]
    removed: np.ndarray     # int8[E]
    k: np.ndarray           # int64[n] updates done
    in_indptr: np.ndarray
    edge_src: np.ndarray
    edge_dst: np.ndarray
    out_indptr: np.ndarray
    out_edges: np.ndarray
    active: np.ndarray      # uint8[period, E]
    mix_any: bool
    resend: bool
    edge_on: np.ndarray     # int8[E]: the edge is in the (repaired) topology
    gone: np.ndarray        # int8[n]: crashed and known to be (perfect detector: not waited for)


def _live_in(s: Snapshot, e: int) -> bool:
    return not s.removed[e] and bool(s.edge_on[e]) and not s.gone[s.edge_src[e]]


def _live_out(s: Snapshot, e: int) -> bool:
    return not s.removed[e] and bool(s.edge_on[e]) and not s.gone[s.edge_dst[e]]


def _can_write(s: Snapshot, j: int, e: int, frozen: set[int]) -> bool:
    if j in frozen:
        return bool(s.resend and s.owed[e])
    if s.resend:
        return bool(s.active[:, e].any())
    # Out-edges whose message a frozen receiver will never read stay occupied forever.
    stuck = [f for f in s.out_edges[s.out_indptr[j]: s.out_indptr[j + 1]]
             if s.slot[f] in (IN_FLIGHT, ARRIVED) and s.edge_dst[f] in frozen and _live_out(s, f)]
    if not stuck:
        return bool(s.active[:, e].any())
    return bool((s.active[:, e].astype(bool) & ~s.active[:, stuck].astype(bool).any(axis=1)).any())


def _satisfiable(s: Snapshot, e: int, frozen: set[int]) -> bool:
    if s.slot[e] in (ARRIVED, IN_FLIGHT):
        return True
    return _can_write(s, int(s.edge_src[e]), e, frozen)


def _waits_on(s: Snapshot, r: int) -> list[int]:
    return [e for e in range(s.in_indptr[r], s.in_indptr[r + 1])
            if s.slot[e] != ARRIVED and _live_in(s, e)]


def frozen_agents(s: Snapshot) -> set[int]:
    """The blocked agents that can never mix again (see the module docstring)."""
    frozen = {int(r) for r in np.flatnonzero(s.status == BLOCKED)}
    changed = True
    while changed:
        changed = False
        for r in sorted(frozen):
            waits = _waits_on(s, r)
            ok = [_satisfiable(s, e, frozen) for e in waits]
            free = (any(ok) or not waits) if s.mix_any else all(ok)
            if free:
                frozen.discard(r)
                changed = True
    return frozen


def diagnose(s: Snapshot, frozen: set[int], iterations: int) -> str:
    """One paragraph a person can act on: the cycle of waiting agents and everyone's progress."""
    # Follow, from the lowest frozen agent, the first unsatisfiable dependency until it repeats.
    def blocker(r: int) -> tuple[int, str]:
        for e in _waits_on(s, r):
            j = int(s.edge_src[e])
            if j in frozen:
                return j, f"agent {r} waits for a message from agent {j}"
            for f in s.out_edges[s.out_indptr[j]: s.out_indptr[j + 1]]:
                dst = int(s.edge_dst[f])
                if dst in frozen and s.slot[f] in (IN_FLIGHT, ARRIVED):
                    return dst, (f"agent {r} waits for agent {j}, which cannot write before "
                                 f"agent {dst} reads its previous message")
        return -1, f"agent {r} waits"

    seen: list[int] = []
    steps: list[str] = []
    r = min(frozen)
    while r not in seen and r >= 0:
        seen.append(r)
        r, text = blocker(r)
        steps.append(text)
    if r in seen:
        steps = steps[seen.index(r):]
    k = s.k
    others = [a for a in range(len(k)) if a not in frozen and s.status[a] != CRASHED]
    progress = (f"; meanwhile agents {_ranges(others)} reached {int(k[others].min())}-{int(k[others].max())} "
                f"updates" if others else "")
    stuck = sorted(frozen)
    return (f"agents {_ranges(stuck)} can never mix again (at {int(k[stuck].min())}-{int(k[stuck].max())} "
            f"of {iterations} updates): {'; '.join(steps)}{progress}")


def starvation(k: np.ndarray, last_time: np.ndarray, status: np.ndarray, iterations: int,
               events: int, max_events: int) -> str:
    """Why a run that exhausted its event budget stopped: who lags, and how far the others got."""
    live = np.flatnonzero(status != CRASHED)
    slow = int(live[np.argmin(k[live])])
    return (f"stopped after {events} events (max_events={max_events}): agent {slow} did "
            f"{int(k[slow])} of {iterations} updates, its last at t={last_time[slow]:.6g}, while the "
            f"others reached up to {int(k[live].max())}; raise max_events if this run only needs longer")


def _ranges(agents: list[int]) -> str:
    """[0, 1, 2, 5] -> '0-2, 5' (long lists stay short)."""
    parts, start = [], None
    for a, b in zip(agents, agents[1:] + [None]):
        start = a if start is None else start
        if b != a + 1:
            parts.append(f"{start}" if start == a else f"{start}-{a}")
            start = None
    return ", ".join(parts[:8]) + (", ..." if len(parts) > 8 else "")
