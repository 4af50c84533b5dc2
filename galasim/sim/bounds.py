"""The closed-form epsilon of a simulated run, from :func:`galasim.mixing.epsilon_bound`."""
from __future__ import annotations

import math

from galasim import mixing
from galasim.gossip import ALLREDUCE, PUSH_SUM, Protocol
from galasim.sim.spec import EngineSpec


def epsilon_for_run(graph, proto: Protocol, spec: EngineSpec, tau: int) -> tuple[float, float]:
    """``(epsilon, log10 epsilon)`` for this run's graph, alpha, L and observed staleness tau.

    All-reduce averages exactly (epsilon = 0); push-sum's column-stochastic mixing is outside the
    theorem, which is stated for GALA's row-stochastic mixing (NaN: nothing is claimed).
    """
    if proto.code == ALLREDUCE:
        return 0.0, -math.inf
    if proto.code == PUSH_SUM:
        return math.nan, math.nan
    # Only the closed form is needed: the data-dependent part of epsilon_bound is the static analogue
    # of the certificate the engine already computed from the realised mixing.
    bound = mixing.epsilon_bound(graph, spec.lr, spec.L, tau=tau, data=False)
    return bound.epsilon, bound.log10_epsilon
