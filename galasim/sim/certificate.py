"""The data-dependent certificate: a bound on max_i ||x_i - x_bar|| from the mixing a run realised.

The gossip state z (agents and live message buffers, one row each) evolves by row-stochastic
maps -- a mix averages rows, a write copies a row -- plus injections, the local updates
(norm <= alpha L) added to one agent's row. Every injection is in exactly one of three parts,
and the bound in force at an observation is the sum of the three parts' bounds (the distance of
a row to the agents' mean is subadditive over a split of the state into parts):

1. the window (:class:`ColumnWindow`): the recent injections, each with its exact column
   C_s(t) = Phi(t, s) e_{i_s}; their worst case over update directions of max_a ||x_a - x_bar||
   is exactly step * max_a sum_s |C_s[a] - mean_c C_s[c]|, which the engines bound by
   max_a q_a + ||dm||_1 (exact at a re-centring; the drift of the mean since) -- and re-centre
   at every close and whenever that would set a new supremum, so the supremum itself is exact
   for this part;
2. the overflow of the current piece (updates that found the window full): g, their norms
   carried through the maps, so max_a ||Y_a - Y_bar|| <= max g + mean g <= 2 max g;
3. the tail: injections that left the window, with the Dobrushin route below. The distance
   to the agents' mean of this part is at most its diameter.

The tail. For a row-stochastic M and any rows z,

    diam(M z) <= tau_1(M) diam(z),    tau_1(M) = 1/2 max_ab sum_l |M_al - M_bl|   (Dobrushin),

in any norm; restricted to the live rows, since a dead row (an empty buffer) is overwritten before
it is read, so the live rows of a product put no weight on it. The engines keep, row operation by
row operation, the product of the maps since the last close. A piece closes when every live agent
has done ``piece`` more iterations; ``piece`` depends only on the size of the state
(:func:`piece_length`), never on the run's length, so the bound of a stationary run does not grow
with the horizon. At a close, the window's oldest pieces leave it with I = the exact diameter
over the live rows of their columns (plus g_(1) + g_(2) of the overflow), the tail's new entry.

With a base time b whose tail part has diameter <= D_b, and the closed entries after b kept
as (P_j, I_j) -- P_j the product of the maps from the end of the entry's stretch to now,
I_j a bound on the diameter of what the stretch added to the tail, at its end -- the tail part at
a close is Phi(now, b) T_b + sum_j P_j Y_j, and diam is subadditive, so

    diam(tail now) <= tau_1(Phi(now, b)) D_b + sum_j tau_1(P_j) I_j =: D_now.                 (*)

Between two closes tau_1 <= 1, so D_c stays in force (the engines add the window and overflow).

Merging. If P_old = P_new R with R row-stochastic (the maps between the two stretches' ends),
tau_1(P_old) <= tau_1(P_new) tau_1(R) <= tau_1(P_new); so two neighbouring entries may be merged
into one with the newer product and the summed weight, which only enlarges (*). Entries form an
exponential histogram: at most PER_LEVEL stretches of each length, the two oldest of a length
merging (so a stretch's newest piece is at most its length newer than its oldest, a small shift
of the Riemann sum for old, long stretches). The oldest entry is folded into the base (b moves to its end, D_b =
its D at that end) once its tau_1 is below NEGLIGIBLE, or when there are more than MAX_ENTRIES. So the memory is O(MAX_ENTRIES) products,
whatever the horizon, plus the window's ``column_cap`` columns.

Products are multiplied with BLAS (batched) when a piece closes; the engines hand over to this
object for that, and for the window's evictions.
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


def column_cap(agents: int, size: int) -> int:
    """Exact columns kept (the window's capacity), from the sizes only.

    Each live column costs a few flops per row operation (a mix or a write) and a close costs
    O(agents x columns): COLUMN_ITERATIONS iterations of every agent's injections, at least
    COLUMN_MIN and at most COLUMN_MAX columns (rings of 16 mix in about that many iterations).
    None (0) when two pieces' updates would not fit: the window would only cost (large states
    keep the Dobrushin route alone).
    """
    if 2 * agents * piece_length(size) > COLUMN_MAX:
        return 0
    return int(min(COLUMN_MAX, max(COLUMN_MIN, COLUMN_ITERATIONS * agents)))


COLUMN_ITERATIONS = 1024
EXACT_AGENTS = 4  # agents the engines evaluate exactly at a candidate supremum (no re-centring)
COLUMN_MIN = 4096
COLUMN_MAX = 16384


class ColumnWindow:
    """The exact columns of the recent injections (docs/simulation.md, "the window").

    Column s is C_s(t) = Phi(t, s) e_{i_s} times the step: the coefficient with which injection s
    (an update of norm <= step into agent i_s's row) enters every row of the state at time t.
    ``C`` holds one row per state row and one column per live injection; the engines apply every
    row operation to it (a mix averages rows, a write copies one) and append a column per update.
    Against ``ref``, the agents' mean column at the last close, they keep ``q_a = ||C_a - ref||_1``
    per agent and ``dm`` = (the agents' mean now) - ``ref``, so at every observation

        max_a sum_s |C_s[a] - mean_c C_s[c]| <= max_a q_a + ||dm||_1,

    the worst case over update directions of max_a ||x_a - x_bar|| from the window's injections
    (exact, up to the drift of the mean since the last close). At a close, the oldest pieces'
    columns leave the window (their exact diameter over the live rows goes to the Dobrushin
    tail) and ``ref``, ``q``, ``dm`` are re-centred.
    """

    def __init__(self, agents: int, size: int, cap: int):
        self.agents = agents
        self.cap = max(0, cap)
        self.C = np.zeros((size, self.cap))
        self.ref = np.zeros(self.cap)
        self.dm = np.zeros(self.cap)
        self.q = np.zeros(agents)
        self.pieces: list[int] = []  # columns per piece in the window, oldest first
        self.K = 0

    def close(self, K: int, rows: np.ndarray) -> float:
        """The piece ending now holds columns ``sum(pieces)..K``; evict old pieces so that two
        pieces like this one fit, re-centre; return the evicted columns' diameter over ``rows``."""
        self.pieces.append(K - sum(self.pieces))
        evicted, drop = 0.0, 0
        # room for two pieces like this one: a piece that finds the window full puts its
        # remaining updates into g (the two-largest-g bound, then the Dobrushin tail)
        while len(self.pieces) > 1 and K - drop > self.cap - 2 * self.pieces[-1]:
            c = self.pieces.pop(0)
            evicted += _column_diameter(self.C[rows, drop:drop + c])
            drop += c
        if drop:
            self.C[:, :K - drop] = self.C[:, drop:K]
            self.C[:, K - drop:K] = 0.0
        K -= drop
        self.K = K
        self.recenter(K)
        return evicted

    def recenter(self, K: int) -> None:
        """ref = the agents' mean column now, dm = 0, q_a = ||C_a - ref||_1 (exact again).

        Sums run left to right (:func:`seqsum`), as the Cython engine's loops do, so that both
        engines compute the same bits and take the same decisions (ext/_scheduler.pyx _recenter).
        """
        agents = self.C[:self.agents, :K]
        self.ref[:] = 0.0
        self.ref[:K] = seqsum(agents, axis=0) / self.agents
        self.dm[:] = 0.0
        self.q[:] = seqsum(np.abs(agents - self.ref[:K]), axis=1)


def seqsum(x: np.ndarray, axis: int = -1) -> np.ndarray | float:
    """The sum along ``axis`` in index order, like a C loop (numpy's sum is pairwise)."""
    if x.shape[axis] == 0:
        return np.sum(x, axis=axis)
    return np.take(np.cumsum(x, axis=axis), -1, axis=axis)


def _column_diameter(block: np.ndarray) -> float:
    """max_ab sum_s |block[a, s] - block[b, s]| (exact while small, else a bound: the sum of
    the columns' spreads max - min)."""
    rows, cols = block.shape
    if rows < 2 or cols == 0:
        return 0.0
    if rows * rows * cols <= EXACT_DIAMETER_WORK:
        return float(max(np.abs(block - block[a]).sum(axis=1).max() for a in range(rows)))
    return float((block.max(axis=0) - block.min(axis=0)).sum())


EXACT_DIAMETER_WORK = 1 << 26


class PiecewiseCertificate:
    """Bookkeeping of the closed pieces; shared by the Cython scheduler and the reference."""

    def __init__(self, size: int, piece: int | None = None, agents: int | None = None,
                 columns: int | None = None):
        self.size = size
        self.piece = max(1, piece if piece is not None else piece_length(size))
        self.window = None
        if agents is not None:
            cap = columns if columns is not None else column_cap(agents, size)
            self.window = ColumnWindow(agents, size, cap)
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

    def close(self, product: np.ndarray, g: np.ndarray, rows: np.ndarray, columns: int = 0) -> float:
        """Close the current piece (its product, its propagated norms g); return (*) at its end.

        ``rows`` are the live rows of the state now: agents and message buffers in use. With a
        window, ``g`` covers only the piece's injections that found no column, ``columns`` is the
        window's column count, and (*) is the tail: what left the window, never its content.
        """
        live_g = np.sort(np.asarray(g)[rows])
        injection = float(live_g[-1] + live_g[-2]) if len(live_g) > 1 else 0.0
        if self.window is not None:
            injection += self.window.close(columns, rows)
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
