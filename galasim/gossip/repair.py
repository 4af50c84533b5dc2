"""The repair rule for dead agents: one definition for the simulator and for real learners.

When agent c is detected dead, every in-neighbour u of c gets the edge ``u -> v`` to every
out-neighbour v of c (u != v), unless it is present: a *bypass*. Any path through c is replaced by
one around it, so the survivors stay strongly connected if the graph was. On the paper's directed
ring this is "the predecessor now sends to the successor".

Applied to several dead agents in any order, the rule gives one graph, so it is defined directly
(:func:`repaired_edges`): over the live agents, ``u -> v`` is an edge when the *original* graph has
a path from u to v whose interior agents are all dead (a direct edge is such a path). Bypassing
c then d, or d then c, or computing it afresh, are the same thing; and when a dead agent rejoins,
recomputing without it returns its original edges and drops exactly the bypasses that no other
dead agent still needs. Pure Python, no torch and no networkx: learners call it as it is.
"""
from __future__ import annotations

from collections.abc import Collection, Iterable


def _out_lists(edges: Iterable[tuple[int, int]]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for u, v in edges:
        out.setdefault(int(u), []).append(int(v))
    return out


def _reach_through(out: dict[int, list[int]], u: int, passable: Collection[int]) -> set[int]:
    """Agents reachable from u by a path whose interior agents are all in ``passable``."""
    found: set[int] = set()
    stack = [u]
    expanded = {u}
    while stack:
        a = stack.pop()
        for v in out.get(a, ()):
            found.add(v)
            if v in passable and v not in expanded:
                expanded.add(v)
                stack.append(v)
    found.discard(u)
    return found


def repaired_edges(edges: Iterable[tuple[int, int]], dead: Collection[int]) -> list[tuple[int, int]]:
    """The edges among live agents after bypassing every agent of ``dead`` (see the module docstring).

    Parameters
    ----------
    edges : iterable of (int, int)
        The original graph, ``u -> v`` meaning v receives from u.
    dead : collection of int
        The agents detected dead.

    Returns
    -------
    list of (int, int)
        Sorted edges between live agents: the original ones and the bypasses.

    Examples
    --------
    >>> ring = [(0, 1), (1, 2), (2, 3), (3, 0)]
    >>> repaired_edges(ring, {1})
    [(0, 2), (2, 3), (3, 0)]
    >>> repaired_edges(ring, {1, 2})
    [(0, 3), (3, 0)]
    >>> repaired_edges(ring, set()) == sorted(ring)
    True
    """
    edges = list(edges)
    dead = set(dead)
    out = _out_lists(edges)
    agents = {int(a) for e in edges for a in e} - dead
    return sorted((u, v) for u in agents for v in _reach_through(out, u, dead) if v not in dead)


def possible_edges(edges: Iterable[tuple[int, int]], crashable: Collection[int]) -> list[tuple[int, int]]:
    """Every edge :func:`repaired_edges` can produce when any subset of ``crashable`` is dead.

    ``u -> v`` can exist exactly when the original graph has a path from u to v with its interior
    in ``crashable``; the simulator allocates these edges once and switches them on and off.

    Examples
    --------
    >>> possible_edges([(0, 1), (1, 2), (2, 0)], {1})
    [(0, 1), (0, 2), (1, 2), (2, 0)]
    """
    edges = list(edges)
    out = _out_lists(edges)
    agents = {int(a) for e in edges for a in e}
    return sorted((u, v) for u in agents for v in _reach_through(out, u, set(crashable)))


def rejoin_source(in_neighbours: Iterable[int], alive: Collection[int]) -> int | None:
    """Whom a restarted agent copies its parameters from: its lowest-numbered live in-neighbour.

    ``in_neighbours`` are its in-neighbours in the graph it rejoins (its original ones); ``None``
    when none is alive (it then keeps the parameters it had when it died).

    Examples
    --------
    >>> rejoin_source([3, 1, 2], alive={2, 3})
    2
    """
    live = [int(u) for u in in_neighbours if u in alive]
    return min(live) if live else None
