"""Crash-and-repair in the summary: the engines' fault log turned into sentences and numbers.

Both engines keep a short log of fault events (always, not only with ``record_events``): a crash,
its detection (the topology is repaired: :mod:`galasim.gossip.repair`) and a rejoin (with the
agent whose parameters it copied). This module replays it, with the same repair rule, to say
which edges came and went, and measures when the epsilon theorem's assumptions were interrupted:
from each crash to the rejoin that ends it (or to the end of the run). A rejoin is a new start
(the theorem assumes identical initialisation), so nothing is claimed across a fault.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from galasim.gossip import repair as repair_rule

CRASH, DETECT, REJOIN = range(3)  # kinds of the engines' fault log (FL_* in ext/_scheduler.pyx)


@dataclass
class Episode:
    """One agent down: crashed at ``crash``, detected at ``detect``, back at ``rejoin`` (None: not)."""

    agent: int
    crash: float
    detect: float | None = None
    rejoin: float | None = None
    source: int | None = None


def episodes(faults: np.ndarray) -> list[Episode]:
    """The crash episodes of a fault log, in crash order."""
    found: list[Episode] = []
    open_: dict[int, Episode] = {}
    for time, kind, agent, other in faults[["time", "kind", "agent", "edge"]].tolist():
        if kind == CRASH:
            open_[agent] = Episode(agent, time)
            found.append(open_[agent])
        elif kind == DETECT:
            open_[agent].detect = time
        else:
            episode = open_.pop(agent)
            episode.rejoin, episode.source = time, (other if other >= 0 else None)
    return found


def _diff(before: set, after: set) -> str:
    gained = " ".join(f"+{u}->{v}" for u, v in sorted(after - before))
    lost = " ".join(f"-{u}->{v}" for u, v in sorted(before - after))
    return " ".join(filter(None, (gained, lost))) or "no edge changes"


def describe(faults: np.ndarray, original: list[tuple[int, int]], repair: bool) -> str:
    """The fault log as one line: who crashed, was bypassed (which edges came and went), rejoined."""
    dead: set[int] = set()
    edges = set(original)
    parts = []
    for time, kind, agent, other in faults[["time", "kind", "agent", "edge"]].tolist():
        if kind == CRASH:
            parts.append(f"t={time:g} agent {agent} crashed"
                         + ("" if repair else " (a perfect detector: no longer waited for)"))
            continue
        if kind == DETECT:
            dead.add(agent)
        else:
            dead.discard(agent)
        after = set(repair_rule.repaired_edges(original, dead)) if repair else edges
        if kind == DETECT:
            parts.append(f"t={time:g} agent {agent} detected dead, bypassed: {_diff(edges, after)}")
        else:
            origin = f"agent {other}'s parameters" if other >= 0 else "its own parameters (no live in-neighbour)"
            change = f": {_diff(edges, after)}" if after != edges else ""
            parts.append(f"t={time:g} agent {agent} rejoined with {origin}{change}")
        edges = after
    return "; ".join(parts)


def interrupted(found: list[Episode], end: float) -> tuple[str, float]:
    """When the assumptions were interrupted (one clause per episode) and the total time with an agent down."""
    clauses, spans = [], []
    for e in found:
        stop = e.rejoin if e.rejoin is not None else end
        spans.append((e.crash, stop))
        detected = f", detected at t={e.detect:g}" if e.detect is not None else ""
        back = f"rejoined at t={e.rejoin:g} (a new start)" if e.rejoin is not None else "down to the end"
        clauses.append(f"agent {e.agent} down t={e.crash:g}-{stop:g} ({stop - e.crash:g}{detected}), {back}")
    return "; ".join(clauses), _union_length(spans)


def _union_length(spans: list[tuple[float, float]]) -> float:
    total, reach = 0.0, -np.inf
    for start, stop in sorted(spans):
        if stop > reach:
            total += stop - max(start, reach)
            reach = stop
    return float(total)
