"""The exact worst case over update directions, replayed offline from a run's event log.

Shares no code with the engines' certificate bookkeeping. The state (agents, then one row per
edge's message buffer) moves by row-stochastic row operations; update s of agent i_s injects
delta_s (||delta_s|| <= step) into row i_s. Its coefficient in every row at a later time t is the
column C_s(t) = Phi(t, s) e_{i_s}; the replay keeps every column (one per update, so only for
small runs). Since the mixing does not depend on the parameters, for every observation time t

    sup over updates of max_a ||x_a(t) - mean_c x_c(t)||  =  step * max_a sum_s |C_s[a] - mean_c C_s[c]|,

attained (at one t and a) by delta_s = step * sign(C_s[a] - mean_c C_s[c]) * e_1: no valid
certificate can be below it. :func:`adversary` returns those updates as a ``callback`` model.
"""
from __future__ import annotations

import numpy as np

from galasim.sim.events import KINDS

UPDATE, WRITE, ARRIVE, MIX, LOST, REJOIN = (KINDS.index(k) for k in ("update", "write", "arrive", "mix", "lost", "rejoin"))


def replay(result):
    """Yield (time, agent columns C[:n] (n x updates so far), [(agent, k) per column]) after the
    last event of every distinct time."""
    log, edges = result.events, result.edges
    n = result.state.shape[0]
    src, dst = edges["src"].to_numpy(), edges["dst"].to_numpy()
    E = len(src)
    kinds = np.asarray(log["kind"].cat.codes if hasattr(log["kind"], "cat") else log["kind"])
    times, agents, eds = (log[c].to_numpy() for c in ("time", "agent", "edge"))
    C = np.zeros((n + E, 64))
    K = 0
    who: list[tuple[int, int]] = []
    count = [0] * n
    arrived = np.zeros(E, dtype=bool)
    for idx, (kind, a, e) in enumerate(zip(kinds, agents, eds)):
        if kind == UPDATE:
            if K == C.shape[1]:
                C = np.concatenate([C, np.zeros_like(C)], axis=1)
            C[a, K] = 1.0
            K += 1
            who.append((int(a), count[a]))
            count[a] += 1
        elif kind == WRITE:
            C[n + e, :K] = C[a, :K]
            arrived[e] = False
        elif kind == ARRIVE:
            arrived[e] = True
        elif kind == LOST:
            arrived[e] = False
        elif kind == MIX:
            fresh = np.flatnonzero((dst == a) & arrived)
            C[a, :K] = (C[a, :K] + C[n + fresh, :K].sum(axis=0)) / (len(fresh) + 1)
            arrived[fresh] = False
        elif kind == REJOIN:
            arrived[(dst == a)] = False
            if e >= 0:
                C[a, :K] = C[src[e], :K]
        if idx + 1 == len(kinds) or times[idx + 1] != times[idx]:
            yield times[idx], C[:n, :K], who


def worst_case(result, step: float) -> tuple[np.ndarray, np.ndarray, dict]:
    """(times, exact worst case at each time, the maximiser: time, agent, signs per (agent, k))."""
    times, values, best = [], [], {"value": -1.0}
    for t, A, who in replay(result):
        dev = A - A.mean(axis=0)
        per_agent = np.abs(dev).sum(axis=1)
        a = int(per_agent.argmax()) if len(per_agent) else 0
        value = step * float(per_agent[a]) if A.shape[1] else 0.0
        times.append(t)
        values.append(value)
        if value > best["value"]:
            best = {"value": value, "time": t, "agent": a,
                    "signs": {w: float(np.sign(dev[a, s])) for s, w in enumerate(who)}}
    return np.array(times), np.array(values), best


def adversary(signs: dict, step: float, dim: int):
    """A ``callback`` update model: agent i's k-th update is step * signs[(i, k)] * e_1."""
    def callback(agent: int, k: int, params: np.ndarray) -> np.ndarray:
        delta = np.zeros(dim)
        delta[0] = step * signs.get((agent, k), 0.0)
        return delta
    return callback
