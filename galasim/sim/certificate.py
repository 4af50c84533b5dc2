"""The data-dependent certificate: a bound on the diameter from the mixing a run actually realised.

The gossip state (agents and live message buffers) evolves by row-stochastic maps -- a mix
averages rows, a write copies a row -- plus injections, the local updates of norm <= alpha L.
For a row-stochastic M, diam(M z) <= tau_1(M) diam(z) with the Dobrushin coefficient tau_1, and
the injections of a stretch of time, propagated through the maps of that stretch, have
diameter <= 2 max_r g_r, where g carries the update norms through the same maps. The engines keep,
row operation by row operation, g and the product of the maps since the current *piece* began.

A piece closes when every live agent has done ``piece`` more iterations. Closed pieces are kept as
entries (P_j, I_j): P_j the product of the maps from the end of the entry's stretch to now, I_j a
bound on the diameter of that stretch's injections. With a base time b whose diameter is <= D_b,

    diam(x_now) <= tau_1(Phi(now, b)) D_b + sum_j tau_1(P_j) I_j          (*)

and inside the current piece diam(x_t) <= B(start of piece) + 2 max g(t), as tau_1 <= 1.
Entries are merged like an exponential histogram (at most two of each length; merging two
neighbours keeps the newer product and adds the weights, which is valid because
tau_1(M P_older) <= tau_1(M P_newer)), so a long horizon costs O(log) dense products; an entry whose
product has contracted below 1e-9, or the oldest beyond MAX_ENTRIES, is folded into the base using
the bound (*) computed at its end. Products are multiplied with BLAS when a piece closes (the
engines hand over to this object for that), which happens about PIECES_PER_RUN times per run.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

PIECES_PER_RUN = 48  # initial piece length: iterations / 48 (halved while pieces contract well)
MAX_ENTRIES = 16
NEGLIGIBLE = 1e-9


@functools.cache
def _blas_controller():
    # Inspecting the loaded BLAS libraries reads /proc/self/maps: do it once per process.
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _dobrushin(product: np.ndarray, rows: np.ndarray) -> float:
    """tau_1 over the live rows of a product (its other rows are stale and never read)."""
    from galasim._mixing_kernels import dobrushin

    return dobrushin(np.ascontiguousarray(product[rows]))


def piece_length(iterations: int) -> int:
    """Iterations per piece: short enough for a tight sum, long enough to keep closes rare."""
    return max(1, iterations // PIECES_PER_RUN)


@dataclass
class _Entry:
    product: np.ndarray   # Phi(now, end of the stretch)
    weight: float         # bound on the diameter of the stretch's propagated injections
    bound_at_end: float   # the bound (*) on the whole state's diameter at the end of the stretch
    length: int           # pieces in the stretch


class PiecewiseCertificate:
    """Bookkeeping of the closed pieces; shared by the Cython scheduler and the reference."""

    def __init__(self, size: int, piece: int):
        self.size = size
        self.piece = max(1, piece)
        self.base = np.eye(size)
        self.base_bound = 0.0  # identical initialisation: diameter 0 at time 0
        self.entries: list[_Entry] = []
        self.closed = 0

    def close(self, product: np.ndarray, injection: float, rows: np.ndarray) -> float:
        """Close the current piece (its product, its 2 max g); return the bound (*) at its end.

        ``rows`` are the live rows of the state now: agents and message buffers in use.
        """
        # These products are small: BLAS threads only fight each other (and other processes of
        # a sweep) here; measured 8-25x slower with OpenBLAS' default threads on 2 busy cores.
        with _blas_controller().limit(limits=1, user_api="blas"):
            self.base = product @ self.base
            for entry in self.entries:
                entry.product = product @ entry.product
        tau_base = _dobrushin(self.base, rows)
        taus = [_dobrushin(entry.product, rows) for entry in self.entries]
        bound = tau_base * self.base_bound + sum(t * e.weight for t, e in zip(taus, self.entries)) + injection
        self.entries.append(_Entry(np.eye(self.size), injection, bound, 1))
        taus.append(1.0)
        self._compact(taus)
        # A piece that already contracts well is too coarse a step for the sum (*): halve it.
        if self.piece > 1 and _dobrushin(product, rows) < 0.5:
            self.piece //= 2
        self.closed += 1
        return bound

    def _compact(self, taus: list[float]) -> None:
        # Fold entries that no longer matter (or the oldest, past the memory cap) into the base.
        while self.entries and (taus[0] <= NEGLIGIBLE or len(self.entries) > MAX_ENTRIES):
            oldest = self.entries.pop(0)
            taus.pop(0)
            self.base, self.base_bound = oldest.product, oldest.bound_at_end
        # Exponential histogram: never three stretches of the same length.
        merged = True
        while merged:
            merged = False
            for k in range(len(self.entries) - 2):
                a, b, c = self.entries[k: k + 3]
                if a.length == b.length == c.length:
                    b.weight += a.weight
                    b.length *= 2
                    del self.entries[k]
                    del taus[k]
                    merged = True
                    break
