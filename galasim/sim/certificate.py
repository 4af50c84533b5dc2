"""The data-dependent certificate: a bound on the diameter from the mixing a run actually realised.

The gossip state z (agents and live message buffers, one row each) evolves by row-stochastic
maps -- a mix averages rows, a write copies a row -- plus injections, the local updates
(norm <= alpha L) added to one agent's row. For a row-stochastic M and any rows z,

    diam(M z) <= tau_1(M) diam(z),    tau_1(M) = 1/2 max_ab sum_l |M_al - M_bl|   (Dobrushin),

in any norm; restricted to the live rows, since a dead row (an empty buffer) is overwritten before
it is read, so the live rows of a product put no weight on it.

Pieces. The engines keep, row operation by row operation, the product of the maps since the last
close and g, the update norms carried through the same maps (g_r >= ||Y_r||, where Y is the state
the piece's injections alone would have produced from zero); so the piece's injections have
diameter <= g_(1) + g_(2), the two largest entries of g over the live rows (<= 2 max g). A piece closes when every live agent has done ``piece`` more iterations;
``piece`` depends only on the size of the state (:func:`piece_length`), never on the run's
length, so the bound of a stationary run does not grow with the horizon.

The bound. With a base time b whose state has diameter <= D_b, and the closed pieces after b kept
as entries (P_j, I_j) -- P_j the product of the maps from the end of the entry's stretch to now,
I_j a bound on the diameter of that stretch's injections at its end -- the state at a close is
z_now = Phi(now, b) z_b + sum_j P_j Y_j, and diam is subadditive, so

    diam(z_now) <= tau_1(Phi(now, b)) D_b + sum_j tau_1(P_j) I_j =: D_now.                    (*)

Between two closes the state is z_t = Phi(t, c) z_c + Y(t) with tau_1 <= 1, so the bound in force
at every observation t of a piece is D_c + 2 max g(t) (the engines add the second term).

Merging. If P_old = P_new R with R row-stochastic (the maps between the two stretches' ends),
tau_1(P_old) <= tau_1(P_new) tau_1(R) <= tau_1(P_new); so two neighbouring entries may be merged
into one with the newer product and the summed weight, which only enlarges (*). Entries form an
exponential histogram: at most PER_LEVEL stretches of each length, the two oldest of a length
merging (so a stretch's newest piece is at most its length newer than its oldest, a small shift
of the Riemann sum for old, long stretches). The oldest entry is folded into the base (b moves to its end, D_b =
its D at that end) once its tau_1 is below NEGLIGIBLE, or when there are more than MAX_ENTRIES. So the memory is O(MAX_ENTRIES) products,
whatever the horizon.

Products are multiplied with BLAS (batched) when a piece closes; the engines hand over to this
object for that.
"""
from __future__ import annotations

import functools

import numpy as np

MAX_ENTRIES = 16
PER_LEVEL = 4
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


def piece_length(size: int) -> int:
    """Iterations per piece, from the size of the state (agents + edges) only: never the horizon.

    Short pieces make the sum (*) a fine Riemann sum; each close costs O(MAX_ENTRIES size^3)
    flops, so larger states close less often (cost per piece about that of the piece's events).
    """
    return max(PIECE_MIN, size // PIECE_DIV)


PIECE_MIN = 16  # iterations: short pieces pay for stragglers (2 max g counts the fastest agent)
PIECE_DIV = 2


class PiecewiseCertificate:
    """Bookkeeping of the closed pieces; shared by the Cython scheduler and the reference."""

    def __init__(self, size: int, piece: int | None = None):
        self.size = size
        self.piece = max(1, piece if piece is not None else piece_length(size))
        self.base = np.eye(size)
        self.base_bound = 0.0  # identical initialisation: diameter 0 at time 0
        self.products = np.empty((0, size, size))
        self.weights: list[float] = []
        self.ends: list[float] = []   # D (*) at the end of each entry's stretch
        self.lengths: list[int] = []  # pieces in each entry's stretch
        self.closed = 0

    @property
    def entries(self) -> int:
        return len(self.weights)

    def close(self, product: np.ndarray, g: np.ndarray, rows: np.ndarray) -> float:
        """Close the current piece (its product, its propagated norms g); return (*) at its end.

        ``rows`` are the live rows of the state now: agents and message buffers in use.
        """
        live_g = np.sort(np.asarray(g)[rows])
        injection = float(live_g[-1] + live_g[-2]) if len(live_g) > 1 else 0.0
        # These products are small: BLAS threads only fight each other (and other processes of
        # a sweep) here; measured 8-25x slower with OpenBLAS' default threads on 2 busy cores.
        with _blas_controller().limit(limits=1, user_api="blas"):
            self.base = product @ self.base
            if len(self.weights):
                self.products = np.matmul(product, self.products)
        tau_base = _dobrushin(self.base, rows)
        taus = [_dobrushin(p, rows) for p in self.products]
        bound = tau_base * self.base_bound + sum(t * w for t, w in zip(taus, self.weights)) + injection
        self.products = np.concatenate([self.products, np.eye(self.size)[None]], axis=0)
        self.weights.append(float(injection))
        self.ends.append(bound)
        self.lengths.append(1)
        taus.append(1.0)
        self._compact(taus)
        self.closed += 1
        return bound

    def _merge(self, k: int, taus: list[float]) -> None:
        """Entry k (older) joins entry k + 1: the newer product, the summed weight and length."""
        self.weights[k + 1] += self.weights[k]
        self.lengths[k + 1] += self.lengths[k]
        del self.weights[k], self.ends[k], self.lengths[k], taus[k]
        self.products = np.delete(self.products, k, axis=0)

    def _fold_oldest(self, taus: list[float]) -> None:
        self.base, self.base_bound = self.products[0], self.ends[0]
        self.products = self.products[1:]
        del self.weights[0], self.ends[0], self.lengths[0], taus[0]

    def _compact(self, taus: list[float]) -> None:
        # Fold entries that no longer matter (or the oldest, past the cap) into the base.
        while self.weights and (taus[0] <= NEGLIGIBLE or len(self.weights) > MAX_ENTRIES):
            self._fold_oldest(taus)
        # Exponential histogram: at most PER_LEVEL stretches of each length; the two oldest of a
        # length merge (newest first, so that merged stretches are always older than short ones).
        merged = True
        while merged:
            merged = False
            for k in range(len(self.lengths) - PER_LEVEL):
                if self.lengths[k] == self.lengths[k + PER_LEVEL]:
                    self._merge(k, taus)
                    merged = True
                    break
