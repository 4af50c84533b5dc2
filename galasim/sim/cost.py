"""Up-front cost estimates of a simulation: refuse an absurd one before building anything.

The estimates are lower bounds (the engines allocate at least this much and process at least this
many events), so a feasible run is never refused; see :mod:`galasim._validation` for the limits.
"""
from __future__ import annotations

from galasim._validation import check_events, check_memory

# Arrays of n x d doubles the engines and the result hold at once: the state, the mixing
# accumulator, the centred copy, the quadratic targets and the returned state.
STATE_COPIES = 5
# Dense (n + E)^2 matrices the certificate holds at once: the running product, the piece's base,
# and one stored piece.
CERTIFICATE_COPIES = 3
# Every trajectory sample is one row of 4 doubles; the engines keep up to 2 x samples + 1 rows.
TRAJECTORY_ROW = 4


def check_run_cost(
    n: int, edges: int, *, dim: int, iterations: int, samples: int, certificate: bool | str
) -> None:
    """Raise ValueError if a run of ``n`` agents and ``edges`` edges is beyond the limits.

    ``certificate`` counts only when ``True``: ``"auto"`` tracks the certificate only for small
    graphs.

    Examples
    --------
    >>> check_run_cost(8, 8, dim=8, iterations=1000, samples=200, certificate="auto")
    >>> check_run_cost(10**7, 10**7, dim=8, iterations=1000, samples=200, certificate=False)
    Traceback (most recent call last):
        ...
    ValueError: simulate with 10000000 agents, 10000000 edges and 1000 iterations would process about 2e+10 events, more than the limit of 1e+10; use fewer agents or iterations
    """
    # Each agent's update is one event, and each message written along an edge at least another.
    check_events(
        f"simulate with {n} agents, {edges} edges and {iterations} iterations",
        iterations * (n + edges),
        "use fewer agents or iterations",
    )
    doubles = STATE_COPIES * n * dim + edges * dim + (2 * samples + 1) * TRAJECTORY_ROW
    check_memory(
        f"simulate with {n} agents, dim={dim} and trajectory_samples={samples}",
        8 * doubles,
        "use fewer agents, a smaller dim or fewer trajectory_samples",
    )
    if certificate in (True, "exact"):
        rows = n + edges
        check_memory(
            f"certificate={certificate!r} on {n} agents and {edges} edges (dense {rows} x {rows} products)",
            8 * CERTIFICATE_COPIES * rows**2,
            "use certificate='auto' or False",
        )
