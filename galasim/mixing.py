"""Mixing analysis: gossip weight matrices, spectra, contraction, delays and the ε-ball bound.

Pure analysis on matrices and topologies (no simulation). Conventions, shared with
:mod:`galasim.topology`:

* a graph is a :class:`networkx.DiGraph` on the agents ``0..n-1`` in which an edge ``j -> i`` means
  agent i **receives** from agent j (an undirected :class:`networkx.Graph` sends both ways);
* ``W[i, j]`` is the weight agent i puts on agent j's value: row i is the receiver, and an edge
  ``j -> i`` of the graph is a positive entry ``W[i, j]``. GALA mixes in this *pull* form, so its
  matrices are row-stochastic; push-sum matrices are column-stochastic;
* a time-varying topology is a :class:`galasim.topology.Schedule` (or a sequence of matrices, one
  per iteration, repeated periodically); ``Φ(k, s) = W(k-1) ··· W(s)`` is the product applied to the
  states of iteration s to give those of iteration k.

Small matrices (``n <= DENSE_LIMIT``) are analysed densely; above that :func:`mixing_matrix` returns
``scipy.sparse.csr_array`` and :func:`slem` uses sparse factorisations, never densifying.

Examples
--------
>>> import math
>>> from galasim import mixing, topology
>>> W = mixing.mixing_matrix(topology.ring(8))       # GALA: 1/(peers+1) on self and each in-peer
>>> float(W[1, 0]), float(W[1, 1]), mixing.is_row_stochastic(W)
(0.5, 0.5, True)
>>> round(mixing.slem(W), 12) == round(math.cos(math.pi / 8), 12)
True
>>> mixing.averaging_time(W)                        # cos(pi/8)**59 <= 0.01
59
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Union

import networkx as nx
import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as sla
from scipy.sparse import csgraph

from galasim import topology
from galasim._validation import check_memory, choice, integer, positive
from galasim._mixing_kernels import dobrushin as _dobrushin_kernel

__all__ = [
    "DENSE_LIMIT",
    "FDLA_MAX_AGENTS",
    "WEIGHTS",
    "Contraction",
    "EpsilonBound",
    "averaging_time",
    "contraction",
    "delay_augmented",
    "dobrushin",
    "epsilon_bound",
    "is_column_stochastic",
    "is_doubly_stochastic",
    "is_row_stochastic",
    "mixing_matrix",
    "product",
    "slem",
    "spectral_gap",
]

Matrix = Union[np.ndarray, sp.csr_array]
#: What the topology-or-matrix functions accept: a graph, a Schedule, a matrix, or one period of
#: matrices of a time-varying topology.
Mixing = Union[nx.Graph, topology.Schedule, np.ndarray, sp.sparray, sp.spmatrix, Sequence]

#: The weight rules of :func:`mixing_matrix`.
WEIGHTS = ("uniform", "metropolis", "lazy", "max-degree", "push-sum", "best-constant", "fdla")

#: Above this many agents matrices are sparse by default and spectra are never computed densely.
DENSE_LIMIT = 2000

#: FDLA weights solve a semidefinite program whose cost grows steeply with n (measured with
#: Clarabel on rings: 64 agents about 8 s, 128 agents about 2 minutes).
FDLA_MAX_AGENTS = 100

# Weights that need a symmetric (undirected) graph.
_SYMMETRIC_RULES = ("metropolis", "max-degree", "best-constant", "fdla")

# Tolerance for "rows (columns) sum to 1" when a function requires it: loose enough for long
# products of matrices, tight enough to reject a genuinely non-stochastic matrix.
_SUM_TOL = 1e-9

# Below this size the sparse SLEM machinery (ARPACK) is pointless; the dense path is used.
_SPARSE_MIN = 16

# slem(method="auto") treats matrices with more than this fraction of non-zeros as dense.
_DENSE_FILL = 0.1

# Relative shift of the shift-invert eigensolver above the spectrum (see _top_eigenvalue).
_SHIFT = 1e-10

# Sparse LUs whose estimated fill (n x bandwidth) exceeds this are avoided when possible.
_BANDED_FILL = 2 * 10**7


# --------------------------------------------------------------------------------------------------
# argument checks


def _as_matrix(W: object, what: str) -> Matrix:
    """A validated float64 copy of W: dense ndarray, or csr_array for any scipy sparse input."""
    if isinstance(W, nx.Graph) or topology.is_schedule(W):
        raise TypeError(
            f"{what} expects a matrix; got a {type(W).__name__}: turn a graph into weights with "
            f"mixing_matrix(G, weights=...), or pass the graph/schedule to product, contraction or "
            f"epsilon_bound"
        )
    if sp.issparse(W):
        M = sp.csr_array(W, dtype=np.float64, copy=True)
        M.sum_duplicates()
        M.eliminate_zeros()
        values = M.data
    else:
        try:
            M = np.array(W, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{what} expects a square matrix of numbers; got {type(W).__name__}") from exc
        values = M
    if M.ndim != 2 or M.shape[0] != M.shape[1] or M.shape[0] == 0:
        raise ValueError(f"{what} needs a non-empty square matrix; got shape {M.shape}")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{what} needs finite entries; the matrix contains inf or nan")
    return M


def _row_sums(M: Matrix) -> np.ndarray:
    return np.asarray(M.sum(axis=1)).ravel()


def _col_sums(M: Matrix) -> np.ndarray:
    return np.asarray(M.sum(axis=0)).ravel()


def _min_entry(M: Matrix) -> float:
    if sp.issparse(M):
        # Implicit zeros count: a sparse matrix with any structural zero has minimum <= 0.
        explicit = float(M.data.min()) if M.nnz else 0.0
        return min(explicit, 0.0) if M.nnz < M.shape[0] * M.shape[1] else explicit
    return float(M.min())


def _sums_to_one(sums: np.ndarray, tol: float) -> bool:
    return bool(np.max(np.abs(sums - 1.0)) <= tol)


def _describe_sums(sums: np.ndarray) -> str:
    return f"[{sums.min():.6g}, {sums.max():.6g}]"


def _require_row_stochastic(M: Matrix, what: str, why: str = "") -> None:
    """Raise a ValueError naming the problem unless M is non-negative with unit row sums."""
    sums = _row_sums(M)
    if not _sums_to_one(sums, _SUM_TOL):
        hint = " (column sums are 1: push-sum weights are not supported here)" if _sums_to_one(
            _col_sums(M), _SUM_TOL) else ""
        raise ValueError(
            f"{what} needs a row-stochastic matrix (pull form, rows summing to 1){why}; got row sums "
            f"in {_describe_sums(sums)}{hint}"
        )
    low = _min_entry(M)
    if low < 0:
        raise ValueError(
            f"{what} needs non-negative weights{why}; got an entry {low:.6g} (best-constant and fdla "
            f"weights may be negative)"
        )


# --------------------------------------------------------------------------------------------------
# weight matrices


def _adjacency(G: nx.Graph) -> sp.csr_array:
    """A[i, j] = 1 iff agent i receives from agent j (j != i); self-loops are dropped."""
    if topology.is_schedule(G):
        raise TypeError(
            "mixing_matrix takes a static graph; for a Schedule use product(schedule, start, stop), "
            "or mixing_matrix(schedule.graph(t)) for iteration t"
        )
    if not isinstance(G, nx.Graph):
        raise TypeError(f"mixing_matrix expects a networkx graph; got {type(G).__name__}")
    n = G.number_of_nodes()
    if n == 0:
        raise ValueError("mixing_matrix needs a graph with at least one agent; got an empty graph")
    bad = [v for v in G if not (isinstance(v, numbers.Integral) and 0 <= v < n)]
    if bad:
        raise ValueError(
            f"graph has node {bad[0]!r}, but agents must be numbered 0..{n - 1}; relabel it with "
            f"galasim.topology.from_networkx"
        )
    edges = np.array(list(G.edges()), dtype=np.int64).reshape(-1, 2)
    if not G.is_directed():
        edges = np.concatenate([edges, edges[:, ::-1]])
    edges = edges[edges[:, 0] != edges[:, 1]]
    senders, receivers = edges[:, 0], edges[:, 1]
    A = sp.csr_array((np.ones(len(edges)), (receivers, senders)), shape=(n, n))
    A.sum_duplicates()  # multigraphs: parallel edges are one link
    A.data[:] = 1.0
    return A


def _require_symmetric(A: sp.csr_array, rule: str) -> None:
    asymmetric = A - A.T
    if asymmetric.nnz and np.any(asymmetric.data != 0):
        # A[i, j] > 0 without A[j, i]: j -> i exists but not i -> j.
        i, j = (int(x[0]) for x in (asymmetric > 0).nonzero())
        raise ValueError(
            f"{rule} weights need a symmetric (undirected) graph, but edge {j} -> {i} has no reverse "
            f"{i} -> {j}; use weights 'uniform', 'lazy' or 'push-sum' for directed graphs"
        )


def _require_connected(A: sp.csr_array, rule: str) -> None:
    count, _ = csgraph.connected_components(A, directed=False)
    if count > 1:
        raise ValueError(f"{rule} weights need a connected graph; this one has {count} components")


def _laplacian_extremes(L: sp.csr_array) -> tuple[float, float]:
    """(largest, second smallest) eigenvalue of a connected graph's Laplacian."""
    n = L.shape[0]
    if n <= DENSE_LIMIT:
        ev = np.linalg.eigvalsh(L.toarray())
        return float(ev[-1]), float(ev[1])
    # c = 2 d_max bounds the spectrum of L (Gershgorin), so L/c and I - L/c have eigenvalues in
    # [0, 1]: λ₁ = c·max(L/c), and λ_{n-1} = c·(1 - μ) for the largest eigenvalue μ of I - L/c on
    # the complement of the constant vector (the null space of L).
    c = 2.0 * float(L.diagonal().max())
    v = np.full(n, 1.0 / math.sqrt(n))
    largest = c * _top_eigenvalue(sp.csr_array(L / c), None)[0]
    return largest, c * _top_eigenvalue(sp.csr_array(sp.eye_array(n) - L / c), v)[1]


def _fdla(A: sp.csr_array) -> np.ndarray:
    """Xiao–Boyd fastest distributed linear averaging: min ||W - 11ᵀ/n||₂ over symmetric W on A."""
    try:
        import cvxpy as cp
    except ImportError as exc:
        raise ImportError("fdla weights need cvxpy: pip install 'galasim[fdla]'") from exc
    n = A.shape[0]
    if n > FDLA_MAX_AGENTS:
        raise ValueError(
            f"fdla weights solve a semidefinite program; n={n} agents is above the practical limit "
            f"FDLA_MAX_AGENTS={FDLA_MAX_AGENTS}; use 'best-constant' or 'metropolis' instead"
        )
    upper = sp.triu(A, k=1).tocoo()
    m = upper.nnz
    # W = I - Σ_e w_e (e_i - e_j)(e_i - e_j)ᵀ is symmetric with unit row sums for any edge weights,
    # so only the spectral norm remains to be minimised.
    incidence = np.zeros((n, m))
    incidence[upper.row, np.arange(m)] = 1.0
    incidence[upper.col, np.arange(m)] = -1.0
    w = cp.Variable(m)
    t = cp.Variable()
    X = np.eye(n) - incidence @ cp.diag(w) @ incidence.T - np.full((n, n), 1.0 / n)
    problem = cp.Problem(cp.Minimize(t), [X << t * np.eye(n), X >> -t * np.eye(n)])
    # Clarabel (interior point) is both faster and far more accurate than SCS on these SDPs.
    solver = cp.CLARABEL if cp.CLARABEL in cp.installed_solvers() else None
    problem.solve(solver=solver)
    if problem.status != cp.OPTIMAL:
        raise RuntimeError(f"the fdla semidefinite program was not solved: status {problem.status!r}")
    return np.eye(n) - incidence @ np.diag(w.value) @ incidence.T


def mixing_matrix(G: nx.Graph, weights: str = "uniform", sparse: bool | None = None) -> Matrix:
    """Gossip weight matrix of a static communication graph.

    ``W[i, j]`` is the weight agent i puts on agent j's value; an edge ``j -> i`` (i receives from
    j) gives ``W[i, j] > 0``. ``indeg_i`` counts the agents i receives from, ``outdeg_j`` those j
    sends to; self-loops of G are ignored (every rule sets the diagonal itself).

    Parameters
    ----------
    G : networkx.DiGraph or networkx.Graph
        Agents ``0..n-1``; an undirected graph sends both ways along every edge.
    weights : str, default "uniform"
        One of :data:`WEIGHTS`:

        * ``"uniform"`` -- GALA's pull weights: ``1/(indeg_i + 1)`` on self and on each in-neighbour
          (row-stochastic);
        * ``"lazy"`` -- lazy random walk ``½I + ½·(uniform over in-neighbours)``: ``W[i, i] = ½``,
          ``W[i, j] = 1/(2 indeg_i)`` (an agent without in-neighbours keeps weight 1);
        * ``"push-sum"`` -- column-stochastic: ``W[i, j] = W[j, j] = 1/(outdeg_j + 1)`` for ``j -> i``;
        * ``"metropolis"`` -- Metropolis–Hastings, ``W[i, j] = 1/(1 + max(d_i, d_j))``, diagonal
          completes the row (symmetric graphs; doubly stochastic);
        * ``"max-degree"`` -- ``I - L/(d_max + 1)`` with the Laplacian L (symmetric graphs);
        * ``"best-constant"`` -- Xiao–Boyd ``I - α* L``, ``α* = 2/(λ₁(L) + λ_{n-1}(L))`` (largest and
          second-smallest Laplacian eigenvalues; connected symmetric graphs; entries may be negative);
        * ``"fdla"`` -- fastest distributed linear averaging (Xiao & Boyd 2004): the symmetric W on
          the graph with unit row sums minimising ``||W - 11ᵀ/n||₂``, a semidefinite program solved
          with cvxpy (optional dependency ``galasim[fdla]``; ``n <= FDLA_MAX_AGENTS``; entries may
          be negative).
    sparse : bool, optional
        Return a ``scipy.sparse.csr_array`` (True) or a dense ndarray (False). Default: sparse iff
        ``n > DENSE_LIMIT``.

    Returns
    -------
    numpy.ndarray or scipy.sparse.csr_array
        The n x n weight matrix.

    Raises
    ------
    ValueError
        For an unknown rule (listing :data:`WEIGHTS`), a symmetric rule on a directed graph (naming
        an edge without its reverse), best-constant or fdla weights on a disconnected graph, or
        nodes that are not ``0..n-1``.
    ImportError
        For ``"fdla"`` without cvxpy.

    Examples
    --------
    >>> import networkx as nx
    >>> from galasim import topology
    >>> mixing_matrix(topology.ring(4)).tolist()[1]          # agent 1 hears agent 0
    [0.5, 0.5, 0.0, 0.0]
    >>> W = mixing_matrix(nx.path_graph(3), "metropolis")
    >>> W.round(4).tolist()
    [[0.6667, 0.3333, 0.0], [0.3333, 0.3333, 0.3333], [0.0, 0.3333, 0.6667]]
    >>> is_column_stochastic(mixing_matrix(topology.ring(5), "push-sum"))
    True
    >>> mixing_matrix(topology.ring(4), "metropolis")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    ValueError: metropolis weights need a symmetric (undirected) graph, but edge 3 -> 0 has no ...
    """
    choice("weights", weights, WEIGHTS)
    if sparse is not None and not isinstance(sparse, bool):
        raise ValueError(f"sparse must be True, False or None; got {sparse!r}")
    A = _adjacency(G)
    n = A.shape[0]
    if weights in _SYMMETRIC_RULES:
        _require_symmetric(A, weights)
    indeg = np.diff(A.indptr).astype(np.float64)
    eye = sp.eye_array(n, format="csr")
    if weights == "uniform":
        W = sp.diags_array(1.0 / (indeg + 1.0)) @ (A + eye)
    elif weights == "lazy":
        share = np.divide(0.5, indeg, out=np.zeros(n), where=indeg > 0)
        W = sp.diags_array(share) @ A + sp.diags_array(np.where(indeg > 0, 0.5, 1.0))
    elif weights == "push-sum":
        outdeg = _col_sums(A)
        W = (A + eye) @ sp.diags_array(1.0 / (outdeg + 1.0))
    elif weights == "metropolis":
        rows, cols = A.nonzero()
        off = sp.csr_array((1.0 / (1.0 + np.maximum(indeg[rows], indeg[cols])), (rows, cols)),
                           shape=(n, n))
        W = off + sp.diags_array(1.0 - _row_sums(off))
    elif weights == "max-degree":
        W = eye - (sp.diags_array(indeg) - A) / (indeg.max(initial=0.0) + 1.0)
    elif weights == "best-constant":
        _require_connected(A, weights)
        if n == 1:
            W = eye
        else:
            L = (sp.diags_array(indeg) - A).tocsr()
            largest, second_smallest = _laplacian_extremes(L)
            W = eye - (2.0 / (largest + second_smallest)) * L
    else:  # fdla
        _require_connected(A, weights)
        W = sp.csr_array(_fdla(A)) if n > 1 else eye
    W = sp.csr_array(W)
    W.sum_duplicates()
    W.eliminate_zeros()
    as_sparse = n > DENSE_LIMIT if sparse is None else sparse
    return W if as_sparse else W.toarray()


# --------------------------------------------------------------------------------------------------
# stochasticity


def is_row_stochastic(W: Matrix, tol: float = 1e-12) -> bool:
    """Whether W is non-negative with rows summing to 1 (the pull form of gossip), within ``tol``.

    Parameters
    ----------
    W : array_like or scipy sparse matrix
        Square matrix.
    tol : float, default 1e-12
        Allowed deviation of every row sum from 1, and of every entry below 0.

    Returns
    -------
    bool

    Examples
    --------
    >>> import numpy as np
    >>> is_row_stochastic(np.array([[0.5, 0.5], [0.0, 1.0]]))
    True
    >>> is_row_stochastic(np.array([[1.5, -0.5], [0.0, 1.0]]))    # rows sum to 1, negative entry
    False
    """
    M = _as_matrix(W, "is_row_stochastic")
    return _min_entry(M) >= -tol and _sums_to_one(_row_sums(M), tol)


def is_column_stochastic(W: Matrix, tol: float = 1e-12) -> bool:
    """Whether W is non-negative with columns summing to 1 (the push-sum form), within ``tol``.

    Parameters
    ----------
    W : array_like or scipy sparse matrix
        Square matrix.
    tol : float, default 1e-12
        Allowed deviation of every column sum from 1, and of every entry below 0.

    Returns
    -------
    bool

    Examples
    --------
    >>> import numpy as np
    >>> is_column_stochastic(np.array([[0.5, 0.0], [0.5, 1.0]]))
    True
    """
    M = _as_matrix(W, "is_column_stochastic")
    return _min_entry(M) >= -tol and _sums_to_one(_col_sums(M), tol)


def is_doubly_stochastic(W: Matrix, tol: float = 1e-12) -> bool:
    """Whether W is non-negative with rows and columns summing to 1, within ``tol``.

    Parameters
    ----------
    W : array_like or scipy sparse matrix
        Square matrix.
    tol : float, default 1e-12
        Allowed deviation of every row and column sum from 1, and of every entry below 0.

    Returns
    -------
    bool

    Examples
    --------
    >>> from galasim import topology
    >>> is_doubly_stochastic(mixing_matrix(topology.ring(6)))           # regular: yes
    True
    >>> is_doubly_stochastic(mixing_matrix(topology.erdos_renyi(6, 0.5, seed=1)))
    False
    """
    M = _as_matrix(W, "is_doubly_stochastic")
    return (_min_entry(M) >= -tol and _sums_to_one(_row_sums(M), tol)
            and _sums_to_one(_col_sums(M), tol))


# --------------------------------------------------------------------------------------------------
# SLEM


def _slem_dense(M: np.ndarray) -> float:
    n = M.shape[0]
    if n == 1:
        return 0.0
    symmetric = np.allclose(M, M.T, rtol=0.0, atol=1e-14)
    ev = np.linalg.eigvalsh(M) if symmetric else np.linalg.eigvals(M)
    others = np.delete(ev, np.argmin(np.abs(ev - 1.0)))  # one copy of the Perron eigenvalue
    return _above_rounding(float(np.max(np.abs(others))), n)


def _above_rounding(value: float, n: int) -> float:
    """``value``, or 0 when it is below the rounding level ~n·eps of the eigen-solvers.

    W = 11ᵀ/n has SLEM 0 but LAPACK returns ~1e-16; reporting 0 keeps averaging_time exact.
    """
    return value if value > 8 * n * np.finfo(float).eps else 0.0


def _has_other_unit_eigenvalue(A: sp.csr_array) -> bool:
    """For a non-negative row-stochastic A: is there an eigenvalue of modulus 1 besides one 1?

    Perron–Frobenius: the eigenvalue 1 has one copy per closed class of the chain i -> j
    (A[i, j] > 0), and a closed class of period h contributes all h-th roots of unity. So the answer
    is structural: two closed classes, or one periodic closed class.
    """
    n = A.shape[0]
    count, labels = csgraph.connected_components(A, directed=True, connection="strong")
    rows, cols = A.nonzero()
    if count > 1:
        leaves = labels[rows] != labels[cols]
        is_open = np.zeros(count, dtype=bool)
        is_open[labels[rows[leaves]]] = True
        closed = np.flatnonzero(~is_open)
        if len(closed) > 1:
            return True
        members = np.flatnonzero(labels == closed[0])
    else:
        members = np.arange(n)
    if np.any(A.diagonal()[members] > 0):
        return False  # a self-loop makes the class aperiodic
    sub = A[members][:, members]
    depth = csgraph.shortest_path(sub, unweighted=True, indices=0)
    r, c = sub.nonzero()
    # The period is the gcd of depth(i) + 1 - depth(j) over the edges i -> j of the class.
    return int(np.gcd.reduce(np.abs(depth[r] + 1 - depth[c]).astype(np.int64))) > 1


def _reversible_measure(A: sp.csr_array) -> np.ndarray | None:
    """The stationary π of A if A is reversible (π_i A_ij = π_j A_ji with π > 0), else None."""
    n = A.shape[0]
    pattern = (A != 0).astype(np.int8)
    if (pattern - pattern.T).nnz:
        return None
    order, parent = csgraph.breadth_first_order(A, 0, directed=False, return_predecessors=True)
    if len(order) < n:
        return None
    child = order[1:]
    up, down = A[parent[child], child], A[child, parent[child]]
    if np.any(up <= 0) or np.any(down <= 0):
        return None
    # Detailed balance fixes π along a spanning tree: π_c / π_p = A_pc / A_cp.
    log_ratio = (np.log(up) - np.log(down)).tolist()
    log_pi = [0.0] * n
    for node, par, step in zip(child.tolist(), parent[child].tolist(), log_ratio):
        log_pi[node] = log_pi[par] + step
    pi = np.exp(np.array(log_pi) - max(log_pi))
    pi /= pi.sum()
    flux = sp.diags_array(pi) @ A
    if abs(flux - flux.T).max() > 1e-12 * flux.max():
        return None  # balanced on the tree but not on some cycle
    return pi


def _bandwidth(P: sp.csr_array) -> int:
    """Bandwidth of P after reverse Cuthill–McKee reordering (bounds the fill of its sparse LU)."""
    order = csgraph.reverse_cuthill_mckee(P, symmetric_mode=True)
    position = np.empty(P.shape[0], dtype=np.int64)
    position[order] = np.arange(P.shape[0])
    rows, cols = P.nonzero()
    return int(np.max(np.abs(position[rows] - position[cols]), initial=0))


def _top_eigenvalue(P: sp.csr_array, v: np.ndarray | None, upper: float = 1.0) -> tuple[float, float]:
    """Largest eigenvalue μ of the symmetric P restricted to v⊥ (all of R^n if v is None), and 1 - μ.

    Every eigenvalue of P is at most ``upper``; P v = v with ||v|| = 1 (the Perron direction).

    Shift-invert Lanczos: x ↦ Π (P - σI)⁻¹ Π x, Π = I - vvᵀ, σ = upper·(1 + _SHIFT), maps the
    eigenvalue μ of P on v⊥ to 1/(μ - σ) and v to 0, so the eigenvalue nearest σ -- the largest --
    becomes the largest in magnitude and stays well separated however tightly the spectrum
    clusters at 1 (a 10⁴-ring has 1 - μ ≈ 10⁻⁷). Projecting the input as well as the output keeps
    the near-singular Perron direction of P - σI out of every solve, so the tiny shift costs no
    accuracy, and 1 - μ = (1 - σ) - 1/θ is obtained without cancellation.

    The sparse LU fills in at most about n x (RCM bandwidth) entries: cheap for rings, tori and
    grids. Expanders have no narrow band and their LU may fill almost completely, but their top
    eigenvalues are well separated, so plain Lanczos on Π P Π is tried first for them.
    """
    n = P.shape[0]

    def project(x: np.ndarray) -> np.ndarray:
        return x if v is None else x - v * (v @ x)

    start = project(np.random.default_rng(0).standard_normal(n))  # fixed: reproducible results
    if n * _bandwidth(P) > _BANDED_FILL:
        plain = sla.LinearOperator((n, n), matvec=lambda x: project(P @ project(x)), dtype=np.float64)
        try:
            mu = float(sla.eigsh(plain, k=1, which="LA", ncv=min(n - 1, 40), maxiter=100, v0=start,
                                 tol=0.0, return_eigenvectors=False)[0])
            return mu, 1.0 - mu
        except sla.ArpackNoConvergence:
            pass  # clustered top eigenvalues: shift-invert, whatever the fill
    sigma = upper * (1.0 + _SHIFT)
    lu = sla.splu(sp.csc_array(P - sigma * sp.eye_array(n)), permc_spec="MMD_AT_PLUS_A")
    shift_invert = sla.LinearOperator((n, n), matvec=lambda x: project(lu.solve(project(x))),
                                      dtype=np.float64)
    theta = float(sla.eigsh(shift_invert, k=1, which="LM", ncv=min(n - 1, 20), v0=start, tol=0.0,
                            return_eigenvectors=False)[0])
    gap = (1.0 - sigma) - 1.0 / theta  # μ = σ + 1/θ
    return 1.0 - gap, gap


def _slem_arnoldi(A: sp.csr_array) -> float:
    n = A.shape[0]
    k = min(6, n - 2)
    start = np.random.default_rng(0).standard_normal(n)
    try:
        ev = sla.eigs(A, k=k, which="LM", ncv=min(n - 1, 40), v0=start, tol=0.0, maxiter=2000,
                      return_eigenvectors=False)
    except sla.ArpackNoConvergence as exc:
        raise RuntimeError(
            f"slem: ARPACK did not converge on this non-normal, non-reversible {n}x{n} matrix (its "
            f"largest eigenvalues are probably clustered); try slem(W, method='dense')"
        ) from exc
    others = np.delete(ev, np.argmin(np.abs(ev - 1.0)))
    return float(np.max(np.abs(others)))


def _slem_sparse(M: sp.csr_array) -> float:
    """SLEM of a large sparse matrix whose rows or columns sum to 1, without densifying.

    Let A be M or Mᵀ, whichever has unit row sums (same spectrum).

    1. Non-negative A with a second closed class or a periodic one has another eigenvalue of
       modulus 1 (decided structurally): SLEM = 1.
    2. A symmetric, or reversible (π_i A_ij = π_j A_ji, e.g. uniform weights on an undirected
       graph): S = Π^½ A Π^-½ is symmetric with A's spectrum and Perron vector v = √π, and SLEM² is
       the largest eigenvalue of S² on v⊥.
    3. A normal (circulants: directed rings, tori, exponential graphs): singular values are the
       eigenvalue moduli and A is doubly stochastic, so SLEM² is the largest eigenvalue of AᵀA on
       1⊥.
    4. Otherwise ARPACK's implicitly restarted Arnoldi on the largest-modulus eigenvalues
       (``eigs(which='LM')``): complex eigenvalues can sit anywhere near the unit circle, so no
       shift is safe. Fast when the SLEM is well below 1 (expanders such as random digraphs).

    Cases 2 and 3 reduce to :func:`_top_eigenvalue`: squaring makes the eigenvalues near -1 as visible
    as those near +1, and deflating the Perron vector avoids ARPACK's trouble with multiplicity.
    """
    n = M.shape[0]
    A = M if _sums_to_one(_row_sums(M), _SUM_TOL) else sp.csr_array(M.T)
    nonnegative = A.data.min(initial=0.0) >= 0
    if nonnegative and _has_other_unit_eigenvalue(A):
        return 1.0
    ones = np.full(n, 1.0 / math.sqrt(n))
    if abs(A - A.T).max() <= 1e-14:
        P, v = A @ A, ones
    elif (pi := _reversible_measure(A)) is not None:
        root = np.sqrt(pi)
        S = sp.diags_array(root) @ A @ sp.diags_array(1.0 / root)
        S = (S + S.T) / 2.0  # symmetric up to rounding; make it exactly so
        P, v = S @ S, root / np.linalg.norm(root)
    else:
        P = A.T @ A
        if abs(P - A @ A.T).max() > 1e-12:
            return _slem_arnoldi(A)
        v = ones
    # Stochastic non-negative A: all eigenvalues of P lie in [0, 1]. Signed weights: bound by the
    # infinity norm so the shift stays above the spectrum.
    upper = 1.0 if nonnegative else max(1.0, float(abs(P).sum(axis=1).max()))
    mu, gap = _top_eigenvalue(sp.csr_array(P), v, upper)
    # μ = SLEM²; near 1, 1 - gap is the accurate form of it.
    return math.sqrt(_above_rounding(1.0 - gap if upper == 1.0 else mu, n))


def slem(W: Matrix, method: str = "auto") -> float:
    """Second-largest eigenvalue modulus: the largest ``|λ|`` over W's eigenvalues except one copy of 1.

    For a doubly stochastic W this is the spectral radius of ``W - 11ᵀ/n``, the per-iteration
    contraction rate of gossip averaging; for a row-stochastic W, of ``W - 1πᵀ`` (π the stationary
    vector). A second eigenvalue 1 (disconnected graph) or -1 (periodic chain) gives 1; values
    below the rounding level of the eigen-solver (about n times the machine epsilon) are reported
    as 0.

    Parameters
    ----------
    W : array_like or scipy sparse matrix
        Square matrix whose rows or columns sum to 1 (entries may be negative, as for best-constant
        and fdla weights).
    method : {"auto", "dense", "sparse"}, default "auto"
        ``"dense"``: all eigenvalues with LAPACK (``eigvalsh`` when W is symmetric), O(n³) time
        and O(n²) memory. ``"sparse"``: sparse LU and ARPACK, never forming a dense matrix (see
        Notes); milliseconds for rings and tori of 10⁴ agents. ``"auto"``: dense for matrices
        with fewer than 16 rows, or with more than 10% non-zero entries and ``n <= DENSE_LIMIT``;
        otherwise sparse, falling back to dense if ARPACK does not converge and
        ``n <= DENSE_LIMIT``. Matrices with fewer than 16 rows are always solved densely.

    Returns
    -------
    float

    Notes
    -----
    The sparse method takes A = W or Wᵀ, whichever is row-stochastic (same spectrum), and

    1. returns 1 when a non-negative A has a second closed class or a periodic one (decided on the
       graph, exactly);
    2. if A is symmetric or reversible (uniform weights on any undirected graph), symmetrises it as
       ``S = Π^½ A Π^-½`` and computes SLEM² as the largest eigenvalue of S² on the complement of
       the Perron vector √π -- squaring puts eigenvalues near -1 beside those near +1;
    3. if A is normal (circulants: directed rings, tori, exponential graphs), computes SLEM² as the
       largest eigenvalue of AᵀA on the complement of the constant vector;
    4. otherwise falls back to ARPACK's Arnoldi iteration for the largest-modulus eigenvalues
       (``eigs(which='LM')``), since complex eigenvalues of a non-normal W may sit anywhere near
       the unit circle and no shift is safe; this converges quickly when the SLEM is well below 1
       and raises a RuntimeError (suggesting ``method="dense"``) when it does not converge.

    Steps 2 and 3 use shift-invert Lanczos with the shift 1 + 1e-10 just above the spectrum, a
    sparse LU of the shifted matrix, and the Perron vector projected out of every solve: the
    eigenvalue nearest the shift converges in a few iterations however tightly the spectrum
    clusters at 1 (a 10,000-agent ring has 1 - SLEM ≈ 5e-8), with accuracy near machine precision.

    Examples
    --------
    >>> import math
    >>> from galasim import topology
    >>> W = mixing_matrix(topology.ring(10_000))        # sparse above DENSE_LIMIT agents
    >>> abs(slem(W) - math.cos(math.pi / 10_000)) < 1e-12
    True
    >>> slem(mixing_matrix(topology.complete(5)))
    0.0
    >>> round(slem(mixing_matrix(topology.hypercube(3))), 12)  # (d-1)/(d+1)
    0.5
    """
    if method not in ("auto", "dense", "sparse"):
        raise ValueError(f"unknown method {method!r}; choose one of: auto, dense, sparse")
    M = _as_matrix(W, "slem")
    n = M.shape[0]
    if not (_sums_to_one(_row_sums(M), _SUM_TOL) or _sums_to_one(_col_sums(M), _SUM_TOL)):
        raise ValueError(
            f"slem needs rows or columns summing to 1 (so that 1 is an eigenvalue); got row sums in "
            f"{_describe_sums(_row_sums(M))}"
        )
    nonzeros = M.nnz if sp.issparse(M) else np.count_nonzero(M)
    small = n < _SPARSE_MIN or (n <= DENSE_LIMIT and nonzeros > _DENSE_FILL * n * n)
    if method == "dense" or (method == "auto" and small):
        return _slem_dense(M.toarray() if sp.issparse(M) else M)
    try:
        return _slem_sparse(M if sp.issparse(M) else sp.csr_array(M))
    except RuntimeError:
        if method == "sparse" or n > DENSE_LIMIT:
            raise
        return _slem_dense(M.toarray() if sp.issparse(M) else M)


def spectral_gap(W: Matrix, method: str = "auto") -> float:
    """``1 - slem(W)``: how much one gossip iteration shrinks the disagreement, asymptotically.

    Parameters
    ----------
    W : array_like or scipy sparse matrix
        As for :func:`slem`.
    method : {"auto", "dense", "sparse"}, default "auto"
        As for :func:`slem`.

    Returns
    -------
    float

    Examples
    --------
    >>> from galasim import topology
    >>> round(spectral_gap(mixing_matrix(topology.hypercube(2))), 12)   # 1 - (d-1)/(d+1)
    0.666666666667
    """
    return 1.0 - slem(W, method)


def averaging_time(W: Matrix, eps: float = 1e-2, method: str = "auto") -> int | float:
    """Iterations for the disagreement to shrink by ``eps`` at the asymptotic rate SLEM.

    ``T = ceil(log(eps) / log(slem(W)))``, the smallest T with ``slem(W)**T <= eps``: for a
    symmetric doubly stochastic W, ``||W^T x - x̄1|| <= eps ||x - x̄1||`` for every x.

    Parameters
    ----------
    W : array_like or scipy sparse matrix
        As for :func:`slem`.
    eps : float, default 1e-2
        Target reduction factor, ``0 < eps < 1``.
    method : {"auto", "dense", "sparse"}, default "auto"
        As for :func:`slem`.

    Returns
    -------
    int or float
        T as an int (``0`` when SLEM = 0: W = 1πᵀ averages in its first iteration, the limit of
        the formula), or ``math.inf`` when SLEM = 1 (no averaging).

    Examples
    --------
    >>> from galasim import topology
    >>> averaging_time(mixing_matrix(topology.hypercube(3)))     # 0.5**7 <= 0.01 < 0.5**6
    7
    >>> averaging_time(mixing_matrix(topology.complete(4)))     # W = 11ᵀ/n averages at once
    0
    """
    if not (isinstance(eps, numbers.Real) and 0 < eps < 1):
        raise ValueError(f"eps must be a number in (0, 1); got {eps!r}")
    rate = slem(W, method)
    if rate >= 1.0:
        return math.inf
    if rate == 0.0:
        return 0
    # The tolerance keeps an exact power (0.5**7 == 2**-7 for eps) from rounding up to T + 1.
    return max(1, math.ceil(math.log(eps) / math.log(rate) - 1e-12))


# --------------------------------------------------------------------------------------------------
# Dobrushin coefficient


def _has_disjoint_rows(M: sp.csr_array) -> bool:
    """Whether two rows of M have disjoint supports (then τ₁ = 1 for a stochastic M), exactly.

    Rows a, b overlap iff (|M| |M|ᵀ)_ab > 0; the product is formed a block of rows at a time so
    that memory stays bounded, stopping at the first row that misses some other row.
    """
    n = M.shape[0]
    pattern = sp.csr_array((np.ones(M.nnz), M.indices, M.indptr), shape=M.shape)
    transposed = sp.csr_array(pattern.T)
    block = max(1, 2**22 // n)
    for start in range(0, n, block):
        overlaps = pattern[start:start + block] @ transposed
        if np.any(np.diff(overlaps.indptr) < n):
            return True
    return False


def dobrushin(W: Matrix) -> float:
    """Dobrushin ergodicity coefficient ``τ₁(W) = ½ max_{a,b} Σ_l |W_al - W_bl|``.

    For a row-stochastic W, ``τ₁(W) ∈ [0, 1]`` bounds the contraction of the diameter of the agents'
    states in any norm: ``max_ab ||(Wx)_a - (Wx)_b|| <= τ₁(W) max_ab ||x_a - x_b||``; and
    ``τ₁(AB) <= τ₁(A) τ₁(B)``. It is 1 exactly when two rows have disjoint supports (two agents with
    no common source of information).

    Parameters
    ----------
    W : array_like or scipy sparse matrix
        Row-stochastic (non-negative, rows summing to 1).

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If W is not row-stochastic, or if ``n > DENSE_LIMIT`` and every pair of rows overlaps (the
        exact value then needs the O(n³) dense computation).

    Notes
    -----
    Dense matrices with ``n <= DENSE_LIMIT`` go straight to the O(n³) Cython kernel
    ``galasim._mixing_kernels.dobrushin`` (about a second at n = 2000). Sparse or larger matrices
    are first checked for two rows with disjoint supports -- exact and cheap, and always the case
    for large sparse topologies -- before falling back to the kernel.

    Examples
    --------
    >>> import numpy as np
    >>> dobrushin(np.array([[0.5, 0.5], [0.25, 0.75]]))
    0.25
    >>> from galasim import topology
    >>> dobrushin(mixing_matrix(topology.ring(10_000)))    # agents 0 and 5000 share nothing
    1.0
    """
    M = _as_matrix(W, "dobrushin")
    _require_row_stochastic(M, "dobrushin")
    n = M.shape[0]
    if n == 1:
        return 0.0
    if sp.issparse(M) or n > DENSE_LIMIT:
        if _has_disjoint_rows(sp.csr_array(M)):
            return 1.0
        if n > DENSE_LIMIT:
            raise ValueError(
                f"dobrushin: every pair of the {n} rows overlaps, and the exact coefficient then "
                f"needs O(n^3) dense work; this is refused above DENSE_LIMIT={DENSE_LIMIT} agents"
            )
        M = M.toarray()
    return float(_dobrushin_kernel(np.ascontiguousarray(M)))


# --------------------------------------------------------------------------------------------------
# products over time


def _period(obj: Mixing, weights: str, what: str) -> list[Matrix]:
    """The matrices W(0), ..., W(P-1) of one period of a graph, schedule, matrix or matrix list."""
    if topology.is_schedule(obj):
        return [mixing_matrix(obj.graph(t), weights) for t in range(obj.period)]
    if isinstance(obj, nx.Graph):
        return [mixing_matrix(obj, weights)]
    if isinstance(obj, (list, tuple)):
        if not obj:
            raise ValueError(f"{what}: an empty sequence of matrices has no period")
        mats = [_as_matrix(M, f"{what} (matrix {t} of the period)") for t, M in enumerate(obj)]
        if len({M.shape for M in mats}) > 1:
            raise ValueError(f"{what}: the matrices of a period must share one shape; got "
                             f"{sorted({M.shape for M in mats})}")
        return mats
    return [_as_matrix(obj, what)]


def _identity_like(M: Matrix) -> Matrix:
    n = M.shape[0]
    return sp.eye_array(n, format="csr") if sp.issparse(M) else np.eye(n)


def _power(M: Matrix, k: int) -> Matrix:
    if not sp.issparse(M):
        return np.linalg.matrix_power(M, k)
    result, square = _identity_like(M), M
    while k:  # binary powering keeps sparse products few
        if k & 1:
            result = result @ square
        k >>= 1
        if k:
            square = square @ square
    return sp.csr_array(result)


def product(schedule_or_W: Mixing, start: int, stop: int, weights: str = "uniform") -> Matrix:
    """The product ``Φ(stop, start) = W(stop-1) ··· W(start+1) W(start)``.

    It maps the agents' values of iteration ``start`` to those of iteration ``stop`` under gossip
    ``x(k+1) = W(k) x(k)``. For a static matrix or graph it is ``W**(stop - start)``.

    Parameters
    ----------
    schedule_or_W : Schedule, networkx graph, matrix, or sequence of matrices
        A :class:`galasim.topology.Schedule` (``W(t)`` is the weight matrix of ``graph(t)``), a
        static graph, a matrix, or the matrices ``W(0), ..., W(P-1)`` of one period.
    start, stop : int
        ``0 <= start <= stop``; ``stop == start`` gives the identity.
    weights : str, default "uniform"
        Weight rule applied to graphs (see :func:`mixing_matrix`); ignored for matrices.

    Returns
    -------
    numpy.ndarray or scipy.sparse.csr_array
        Dense unless the matrices are sparse.

    Examples
    --------
    >>> from galasim import topology
    >>> s = topology.one_peer_exponential(8)       # period 3: hops 1, 2, 4
    >>> Phi = product(s, 0, 3)
    >>> bool(np.allclose(Phi, 1 / 8))              # exact averaging after one period
    True
    >>> product(np.array([[0.5, 0.5], [0.0, 1.0]]), 0, 2).tolist()
    [[0.25, 0.75], [0.0, 1.0]]
    """
    mats = _period(schedule_or_W, weights, "product")
    start = integer("product: start", start, 0)
    stop = integer(f"product: stop (start={start})", stop, start)
    period = len(mats)
    full, rest = divmod(stop - start, period)
    # Φ = [W(stop-1) ··· W(start + full·P)] · Ψ^full, Ψ the product over one period from `start`.
    psi = _identity_like(mats[0])
    for t in range(start, start + period):
        psi = mats[t % period] @ psi
    result = _power(psi, full) if period > 1 else _power(mats[0], full)
    for t in range(start + full * period, stop):
        result = mats[t % period] @ result
    return sp.csr_array(result) if sp.issparse(result) else result


# --------------------------------------------------------------------------------------------------
# contraction


class Contraction(NamedTuple):
    """Empirical geometric contraction ``||Φ(k, 0) - 1πᵀ||₂ <= C q^k`` (see :func:`contraction`)."""

    C: float
    """Smallest constant for which the bound holds at every computed iteration."""
    q: float
    """Per-iteration rate fitted on the tail of the computed error curve."""
    horizon: int
    """Last iteration computed."""
    pi: np.ndarray
    """Limiting left vector: ``Φ(k, 0) -> 1πᵀ`` (1/n for doubly stochastic matrices)."""
    errors: np.ndarray
    """``||Φ(k, 0) - 1πᵀ||₂`` for ``k = 0..horizon``."""


def _left_perron(M: np.ndarray) -> np.ndarray:
    """π with πᵀM = πᵀ and Σπ = 1 (unique for the products of a converging schedule)."""
    n = M.shape[0]
    if _sums_to_one(_col_sums(M), _SUM_TOL):
        return np.full(n, 1.0 / n)  # doubly stochastic: exact, no eigen-solver noise
    ev, vecs = np.linalg.eig(M.T)
    order = np.argsort(np.abs(ev - 1.0))
    if n > 1 and abs(ev[order[1]] - 1.0) < 1e-9:
        raise ValueError(
            "the products do not converge to consensus: the eigenvalue 1 of the period product is "
            "not simple (the topology is not connected over time)"
        )
    pi = np.real(vecs[:, order[0]])
    return pi / pi.sum()


def contraction(
    schedule_or_W: Mixing,
    horizon: int | None = None,
    weights: str = "uniform",
    tol: float = 1e-12,
) -> Contraction:
    """Empirical (C, q) with ``||Φ(s+m, s) - 1π_sᵀ||₂ <= C q^m``: how fast products reach consensus.

    ``Φ(s+m, s)`` is the product of the m matrices from iteration s on (see :func:`product`) and
    ``1π_sᵀ`` its limit as m grows; the bound is asserted for every start phase s of the period,
    the form the ε-ball theorem needs. The error ``e_s(m) = ||Φ(s+m, s) - 1π_sᵀ||₂`` is computed as
    the norm of the product of the deviations ``D(t) = W(t) - 1π_tᵀ``, which equals it exactly
    (``D(t)1 = 0`` and ``π_{t+1}ᵀW(t) = π_tᵀ``) and keeps full *relative* accuracy down to tiny errors,
    where subtracting 1πᵀ from Φ would leave only rounding noise.

    * ``q = (e_0(b) / e_0(a))^(1/(b-a))`` over the second half ``[a, b]`` of the computed curve from
      phase 0 (a, b multiples of the period): the per-iteration rate of the products over whole
      periods. For a static normal W (symmetric doubly stochastic, circulant) ``e(m) = slem(W)^m``
      exactly, so q is SLEM(W) to rounding. If the products average exactly within a period (e.g.
      one-peer exponential graphs on 2^k agents) there is no rate to fit, and q minimises
      ``C/(1 - q)``, the combination the ε-bound sums (over a grid of step 0.001).
    * ``C = max e_s(m) / q^m`` over every phase s and computed m: the bound holds there by
      construction; beyond the horizon it is empirical (exact for normal W).

    Parameters
    ----------
    schedule_or_W : Schedule, networkx graph, matrix, or sequence of matrices
        As for :func:`product`. Matrices must have unit row sums (entries may be negative);
        ``n <= DENSE_LIMIT`` (the products are dense).
    horizon : int, optional
        Maximum number of iterations; default 10,000.
    weights : str, default "uniform"
        Weight rule applied to graphs.
    tol : float, default 1e-12
        Stop once the error from phase 0 has fallen below ``tol`` times its initial value.

    Returns
    -------
    Contraction
        Named tuple ``(C, q, horizon, pi, errors)``; ``pi`` and ``errors`` are those of phase 0.

    Raises
    ------
    ValueError
        For matrices without unit row sums, ``n > DENSE_LIMIT``, or a topology whose products do
        not converge to consensus.

    Examples
    --------
    >>> import networkx as nx
    >>> W = mixing_matrix(nx.cycle_graph(10), "metropolis")
    >>> c = contraction(W)
    >>> bool(abs(c.q - slem(W)) < 1e-9), round(c.C, 9)
    (True, 1.0)
    """
    mats = _period(schedule_or_W, weights, "contraction")
    n = mats[0].shape[0]
    if n > DENSE_LIMIT:
        raise ValueError(f"contraction forms dense products; n={n} is above DENSE_LIMIT={DENSE_LIMIT}")
    mats = [M.toarray() if sp.issparse(M) else M for M in mats]
    for t, M in enumerate(mats):
        if not _sums_to_one(_row_sums(M), _SUM_TOL):
            raise ValueError(
                f"contraction needs rows summing to 1 (pull form); matrix {t} of the period has row "
                f"sums in {_describe_sums(_row_sums(M))}"
            )
    cap = 10_000 if horizon is None else integer("contraction: horizon", horizon, 1)
    if not (isinstance(tol, numbers.Real) and 0 < tol < 1):
        raise ValueError(f"contraction: tol must be in (0, 1); got {tol!r}")
    period = len(mats)
    pis = [_left_perron(product(mats, 0, period))] * period
    # π_tᵀ = π_{t+1}ᵀ W(t) with π_period = π_0: walk back through the period.
    for t in range(period - 1, 0, -1):
        pis[t] = pis[(t + 1) % period] @ mats[t]
    ones = np.ones(n)
    deviations = [W - np.outer(ones, pi) for W, pi in zip(mats, pis)]

    def curve(phase: int, steps: int, floor: float = 0.0) -> np.ndarray:
        """e_phase(m) for m = 0..steps, stopping early once at or below `floor`."""
        current = np.eye(n) - np.outer(ones, pis[phase])
        errors = [np.linalg.norm(current, 2)]
        while len(errors) <= steps and errors[-1] > floor:
            current = deviations[(phase + len(errors) - 1) % period] @ current
            errors.append(np.linalg.norm(current, 2))
        return np.array(errors)

    errors = curve(0, cap, floor=tol * np.linalg.norm(np.eye(n) - np.outer(ones, pis[0]), 2))
    last = len(errors) - 1
    curves = [errors] + [curve(phase, last) for phase in range(1, period)]
    # Fit on whole periods of the phase-0 curve, above the stopping floor.
    b = (last if errors[last] > tol * errors[0] else last - 1) // period * period
    a = b // period // 2 * period
    # (m, log e_s(m)) of every non-zero error: C(q) = max e_s(m)/q^m is taken over these.
    steps = np.concatenate([np.flatnonzero(e > 0) for e in curves])
    logs = np.concatenate([np.log(e[e > 0]) for e in curves])
    if b > a:
        q = float((errors[b] / errors[a]) ** (1.0 / (b - a)))
    elif np.any(steps > 0):
        # Exact averaging within a period: no asymptotic rate to fit. Take the q that minimises
        # C(q)/(1 - q), the combination the ε-bound uses (sum over m of C q^m).
        grid = np.linspace(0.001, 0.999, 999)
        log_C = np.max(logs[None, :] - steps[None, :] * np.log(grid)[:, None], axis=1)
        q = float(grid[np.argmin(log_C - np.log1p(-grid))])
    else:  # W = 1πᵀ: consensus after one iteration from every phase
        q = 0.0
    C = float(np.exp(np.max(logs - steps * math.log(q)))) if q > 0 else float(np.exp(logs.max()))
    return Contraction(C=C, q=q, horizon=last, pi=pis[0], errors=errors)


# --------------------------------------------------------------------------------------------------
# delays


def delay_augmented(W: Matrix, tau: int) -> Matrix:
    """The ``N = n(τ+1)`` row-stochastic matrix of gossip in which every message is τ iterations old.

    The standard augmented-graph construction (Nedić & Ozdaglar, delays as virtual nodes): besides
    the n agents (indices ``0..n-1``) there are ``nτ`` delay slots, slot ``(j, d)`` at index
    ``d·n + j`` (``d = 1..τ``) holding agent j's value from d iterations ago. Per iteration:

    * slot ``(j, 1)`` copies agent j and slot ``(j, d)`` copies slot ``(j, d-1)`` (weight 1): the
      slots of each agent form a chain;
    * agent i keeps ``W[i, i]`` on its own current value and puts ``W[i, j]`` on slot ``(j, τ)``,
      i.e. on agent j's value from τ iterations ago -- the worst case of "delayed by up to τ", every
      off-diagonal contribution delayed by exactly τ.

    Row sums are those of W, so the result is row-stochastic when W is; ``τ = 0`` returns (a copy
    of) W, whatever its form.

    Parameters
    ----------
    W : array_like or scipy sparse matrix
        n x n matrix with unit row sums (pull form) when ``tau > 0``.
    tau : int
        Delay in iterations, ``>= 0``.

    Returns
    -------
    numpy.ndarray or scipy.sparse.csr_array
        N x N, sparse iff W is.

    Examples
    --------
    >>> W = np.array([[0.5, 0.5], [0.5, 0.5]])
    >>> delay_augmented(W, 1)           # agents 0, 1; slots (0, 1), (1, 1)
    array([[0.5, 0. , 0. , 0.5],
           [0. , 0.5, 0.5, 0. ],
           [1. , 0. , 0. , 0. ],
           [0. , 1. , 0. , 0. ]])
    """
    M = _as_matrix(W, "delay_augmented")
    tau = integer("delay_augmented: tau (delay in iterations)", tau, 0)
    if tau == 0:
        return M
    if not _sums_to_one(_row_sums(M), _SUM_TOL):
        raise ValueError(
            f"delay_augmented needs rows summing to 1 (pull form) when tau > 0; got row sums in "
            f"{_describe_sums(_row_sums(M))}"
        )
    n = M.shape[0]
    entries = sp.coo_array(M)
    size = n * (tau + 1)
    # The result is dense when W is: its N^2 entries; sparse, the entries and their two indices.
    needed = 24 * (entries.nnz + n * tau) if sp.issparse(M) else 8 * size**2
    check_memory(
        f"delay_augmented(tau={tau}) of {n} agents ({size} rows)", needed, "use a smaller tau"
    )
    own = entries.row == entries.col
    slots = np.arange(n, n * (tau + 1))  # slot (j, d) = d·n + j copies index (d-1)·n + j
    rows = np.concatenate([entries.row[own], entries.row[~own], slots])
    cols = np.concatenate([entries.col[own], tau * n + entries.col[~own], slots - n])
    values = np.concatenate([entries.data[own], entries.data[~own], np.ones(n * tau)])
    augmented = sp.csr_array((values, (rows, cols)), shape=(n * (tau + 1),) * 2)
    return augmented if sp.issparse(M) else augmented.toarray()


# --------------------------------------------------------------------------------------------------
# the ε-ball bound


_DERIVATION = """\
Model. Stack the n agents and the n*tau delay slots (slot (j, d) holds agent j's value from d
iterations ago) into N = n(tau+1) rows: x(k+1) = A(k) (x(k) + u(k)) with every A(k)
row-stochastic, ||u_i(k)|| <= lr*L on agent rows (A1), u = 0 on slots, identical initial values,
x̄ = mean over the agents.

Diameter. delta(x) = max_ab ||x_a - x_b|| obeys delta(M z) <= tau1(M) delta(z) for row-stochastic
M (Dobrushin), and delta(u) <= 2 lr L, so with Phi_m = A(k-1)...A(k-m)
    ||x_i(k) - x̄(k)|| <= delta(x(k)) <= 2 lr L sum_{m>=0} tau1(Phi_m).

Window. By (A2) agents keep a self-weight >= beta and slots forward with weight 1, so once an
agent holds (a positive share of) agent r's value it keeps holding it; its slots hold it within
tau iterations, and by (A3)-(A4) a new agent within tau + B more. All N rows hold it after
(n-1)(tau+B) + tau <= (N-1)B = B0 iterations, along paths of B0 weights >= beta: the product over
any B0 iterations has a column >= eta = beta^B0, so its tau1 <= 1 - eta, and by submultiplicativity
    tau1(Phi_m) <= (1-eta)^floor(m/B0) <= q^m / (1-eta),   q = (1 - beta^B0)^(1/B0).

Constants. The Nedic-Olshevsky-Ozdaglar-Tsitsiklis constant C = 2(1 + beta^-B0)/(1 - beta^B0) is
>= 2/(1-eta), so 2 tau1(Phi_m) <= C q^m and
    epsilon = lr L C sum_m q^m = lr L C / (1 - q)  ~  2 lr L B0 beta^(-2 B0):
astronomically loose, as expected of a bound that only knows (n, tau, B, beta); it is computed in
log space (log10_C, log10_epsilon). The window argument alone gives the sharper
2 lr L / ((1-eta)(1-q)) ~ 2 lr L B0 beta^-B0, still astronomical; C keeps the standard form.

Data-dependent. For the realised matrices with every message delayed exactly tau,
epsilon_data = 2 lr L max_phase sum_{m>=0} tau1(Phi_m): tau1(Phi_m) is non-increasing in m, so the
sum is bracketed from tau1 at checkpoints (upper bound reported), and the tail after the last
checkpoint M is bounded by submultiplicativity, sum_{m>M} <= tau1(Phi_M) (S - 1). q_data is the
per-iteration SLEM of the augmented products and C_data = epsilon_data (1 - q_data) / (lr L), the
constant of the form lr L C / (1 - q) at that rate. epsilon_data certifies this delay pattern;
epsilon covers every delay pattern bounded by tau.
"""


@dataclass(frozen=True)
class EpsilonBound:
    """The ε-ball bound ``||x_i^k - x̄^k|| <= ε`` for all agents and iterations (:func:`epsilon_bound`).

    Closed form from assumptions (A1)-(A4) only: ``C``, ``q``, ``epsilon`` (= lr·L·C/(1-q)) and
    their logarithms. Data-dependent, from the realised matrices: ``C_data``, ``q_data``,
    ``epsilon_data`` (NaN when not computed; ``data_note`` says why or how).
    """

    C: float
    """Nedić–Olshevsky constant ``2(1 + β^-B0)/(1 - β^B0)``; ``inf`` beyond float64."""
    q: float
    """Rate ``(1 - β^B0)^(1/B0)``; rounds to 1.0 when ``β^B0 < 1e-16``."""
    epsilon: float
    """``lr·L·C/(1 - q)``; ``inf`` beyond float64 or when an assumption fails."""
    log10_epsilon: float
    """``log10(epsilon)``, finite whenever the assumptions hold."""
    log10_C: float
    """``log10(C)``."""
    C_data: float
    """``epsilon_data·(1 - q_data)/(lr·L)``."""
    q_data: float
    """Per-iteration SLEM of the delay-augmented products."""
    epsilon_data: float
    """``2·lr·L·Σ_m τ₁(Φ_m)`` over the realised augmented matrices (an upper bound of the sum)."""
    data_note: str
    """How the data-dependent sum was computed, or why it was not."""
    assumptions: tuple[str, ...]
    """(A1)-(A4) with the values used, each marked VIOLATED when it fails."""
    assumptions_hold: bool
    """Whether (A2) and (A3) hold; otherwise the closed form is ``inf``."""
    derivation: str = field(repr=False)
    """How the numbers follow from the assumptions."""
    n: int
    tau: int
    N: int
    """Agents plus delay slots, ``n(τ+1)``."""
    B: int
    """Connectivity window of (A3)."""
    B0: int
    """``(N-1)·B``."""
    beta: float
    """Smallest non-zero weight."""
    lr: float
    L: float


def _strongly_connected_windows(patterns: list[sp.csr_array], width: int) -> bool:
    """Whether the union over every `width` consecutive iterations (cyclically) is strongly connected."""
    period = len(patterns)
    for start in range(period if width < period else 1):
        union = sum(patterns[(start + k) % period] for k in range(min(width, period)))
        if csgraph.connected_components(union, directed=True, connection="strong")[0] != 1:
            return False
    return True


def _smallest_window(patterns: list[sp.csr_array]) -> int | None:
    period = len(patterns)
    if not _strongly_connected_windows(patterns, period):
        return None
    low, high = 1, period  # the property is monotone in the width: binary search
    while low < high:
        mid = (low + high) // 2
        if _strongly_connected_windows(patterns, mid):
            high = mid
        else:
            low = mid + 1
    return low


def _dobrushin_series(mats: list[np.ndarray], rtol: float, horizon: int) -> tuple[float, float, int]:
    """Bracket ``max_e Σ_{m>=0} τ₁(Q_e(m))``, ``Q_e(m) = A(e-1)···A(e-m)`` (indices mod the period).

    The products end at phase e; the worst phase bounds every iteration. The first period is
    exact; then τ₁ is evaluated at checkpoints h periods apart, h a power of two. Since τ₁(Q(m)) is
    non-increasing in m, on a block it lies between its values at the two ends, which brackets the
    block's sum; h grows (at most doubling) while the predicted widening of the bracket -- from the
    decay seen on the previous block -- keeps the accumulated width below ``rtol`` times the sum
    so far. Flat stretches (τ₁ = 1 while information spreads) and the geometric tail are crossed
    in a few checkpoints each. Stopping at a checkpoint M ≡ 0 (mod P) with t = τ₁(Q(M)) <= rtol,
    Q(M + r) = Q(M) Q(r) bounds the tail by ``t (S - 1)``, so ``S <= (U - t) / (1 - t)`` for the
    upper sum U up to M.

    Returns (upper, lower, last checkpoint); upper is inf if τ₁ is still 1 at the horizon.
    """
    period, N = len(mats), mats[0].shape[0]
    upper_all, lower_all, last_all = 0.0, 0.0, 0
    for end in range(period):
        Q = np.eye(N)
        upper = lower = 1.0  # τ₁(I) = 1 for N >= 2
        for m in range(1, period + 1):
            Q = Q @ mats[(end - m) % period]
            t = _dobrushin_kernel(Q)
            upper += t
            lower += t
        m, h, decay = period, 1, 1.0  # decay: τ₁ ratio per period seen on the last block
        powers = [Q]  # powers[i] = Ψ^(2^i), Ψ = Q(P) the period product ending at `end`
        while t > rtol and m < horizon:
            budget = rtol * lower - (upper - lower)
            h = min(2 * h, max(1, (horizon - m) // period))
            while h > 1 and h * period * t * (1.0 - decay**h) > budget:
                h //= 2
            while True:  # a block that widens the bracket beyond the budget is redone, shorter
                level = h.bit_length() - 1
                while len(powers) <= level:
                    powers.append(powers[-1] @ powers[-1])
                Q_next = Q @ powers[level]
                t_next = _dobrushin_kernel(Q_next)
                # The block's last iteration is exact; the other h·P - 1 lie in [t_next, t].
                widening = (h * period - 1) * (t - t_next)
                if h == 1 or widening <= rtol * (lower + h * period * t_next) - (upper - lower):
                    break
                h //= 2
            upper += (h * period - 1) * t + t_next
            lower += h * period * t_next
            decay = (t_next / t) ** (1.0 / h) if t_next > 0 else 0.0
            Q, m, t = Q_next, m + h * period, t_next
        upper = (upper - t) / (1.0 - t) if t < 1.0 else math.inf
        upper_all, lower_all, last_all = max(upper_all, upper), max(lower_all, lower), max(last_all, m)
    return upper_all, lower_all, last_all


def _closed_form(beta: float, B0: int, lr: float, L: float) -> tuple[float, float, float, float]:
    """(C, q, log C, log ε) of the closed form, in log space: β^B0 underflows for modest N."""
    log_eta = B0 * math.log(beta)
    eta = math.exp(log_eta)
    log_one_minus_eta = math.log1p(-eta)
    log_C = math.log(2.0) + float(np.logaddexp(0.0, -log_eta)) - log_one_minus_eta
    # 1 - q = 1 - (1-η)^(1/B0) = -expm1(log1p(-η)/B0); for tiny η it is η/B0 to relative O(η).
    if eta > 1e-200:
        log_one_minus_q = math.log(-math.expm1(log_one_minus_eta / B0))
    else:
        log_one_minus_q = log_eta - math.log(B0)
    q = math.exp(log_one_minus_eta / B0)
    return _exp(log_C), q, float(log_C), math.log(lr) + math.log(L) + log_C - log_one_minus_q


def _exp(log_value: float) -> float:
    return math.exp(log_value) if log_value < math.log(np.finfo(float).max) else math.inf


def epsilon_bound(
    topology_or_W: Mixing,
    lr: float,
    L: float,
    tau: int = 0,
    B: int | None = None,
    weights: str = "uniform",
    *,
    data: bool = True,
    data_max_agents: int = 512,
    data_rtol: float = 1e-2,
    data_horizon: int = 10**7,
) -> EpsilonBound:
    """The ε-ball bound of GALA: every agent stays within ε of the agents' mean.

    Under (A1) updates ``||δ_i^k|| <= lr·L``, (A2) non-zero weights ``>= β`` including every agent's
    self-weight, (A3) the union of the graphs over any B consecutive iterations strongly connected
    and (A4) delays of at most τ iterations, for identical initialisation,
    ``||x_i^k - x̄^k|| <= lr·L·C/(1 - q) = ε`` with

    * ``β`` = the smallest non-zero weight, ``N = n(τ+1)`` (agents and delay slots, see
      :func:`delay_augmented`), ``B0 = (N-1)·B``;
    * ``C = 2(1 + β^-B0)/(1 - β^B0)`` and ``q = (1 - β^B0)^(1/B0)`` (Nedić–Olshevsky–Ozdaglar–
      Tsitsiklis constants).

    This closed form is astronomically loose (``ε ~ 2·lr·L·B0·β^(-2·B0)``), so a tight,
    data-dependent certificate from the realised matrices with delay exactly τ is reported beside
    it: ``epsilon_data = 2·lr·L·Σ_{m>=0} τ₁(Φ_m)`` (Dobrushin coefficients of the augmented
    products), with ``q_data`` its asymptotic per-iteration rate and ``C_data`` the constant of the
    same form ``lr·L·C_data/(1 - q_data) = epsilon_data``. ``derivation`` spells out the argument.

    Parameters
    ----------
    topology_or_W : networkx graph, Schedule, matrix, or sequence of matrices
        A static graph (``weights`` applied), a :class:`galasim.topology.Schedule` (one matrix per
        iteration over its period), a row-stochastic matrix, or the matrices of one period.
    lr, L : float
        Learning rate and update bound, ``> 0``.
    tau : int, default 0
        Delay bound in iterations, ``>= 0``.
    B : int, optional
        Connectivity window of (A3); default the smallest that holds (1 for a strongly connected
        static graph, ``schedule.B`` for a schedule). A given B is checked.
    weights : str, default "uniform"
        Weight rule for graphs; must give row-stochastic non-negative matrices.
    data : bool, default True
        Compute the data-dependent constants; False skips them (NaN), e.g. when only the closed
        form is needed for many runs.
    data_max_agents : int, default 512
        Compute the data-dependent constants only when ``N <= data_max_agents`` (each checkpoint
        costs O(N³)); otherwise they are NaN and ``data_note`` says so.
    data_rtol : float, default 1e-2
        Target relative accuracy of the data-dependent sum (see ``data_note`` for the bracket).
    data_horizon : int, default 10**7
        Iterations after which the data-dependent sum is cut off (with a rigorous tail bound).

    Returns
    -------
    EpsilonBound

    Raises
    ------
    ValueError
        For ``lr <= 0``, ``L <= 0``, ``tau < 0``, ``B < 1``, fewer than 2 agents, or matrices that are
        not row-stochastic and non-negative (e.g. push-sum or best-constant weights).

    Examples
    --------
    >>> from galasim import topology
    >>> bound = epsilon_bound(topology.ring(4), lr=1e-3, L=1.0)
    >>> bound.beta, bound.B0, round(bound.C, 6), round(bound.q, 6)
    (0.5, 3, 20.571429, 0.956466)
    >>> round(bound.epsilon, 6), round(bound.epsilon_data, 3)     # closed form vs certificate
    (0.472533, 0.008)
    >>> print(bound.assumptions[2])
    A3 connectivity: the union over every B=1 consecutive iterations is strongly connected
    >>> epsilon_bound(topology.ring(64), lr=1e-3, L=1.0, tau=2, data=False).log10_epsilon > 100
    True
    """
    lr = positive("epsilon_bound: lr (learning rate)", lr)
    L = positive("epsilon_bound: L (update bound)", L)
    tau = integer("epsilon_bound: tau (delay bound in iterations)", tau, 0)
    if B is not None:
        B = integer("epsilon_bound: B (connectivity window)", B, 1)
    data_max_agents = integer("epsilon_bound: data_max_agents", data_max_agents, 0)
    data_horizon = integer("epsilon_bound: data_horizon", data_horizon, 1)
    if not (isinstance(data_rtol, numbers.Real) and 0 < data_rtol < 1):
        raise ValueError(f"epsilon_bound: data_rtol must be in (0, 1); got {data_rtol!r}")
    mats = _period(topology_or_W, weights, "epsilon_bound")
    why = f" (weights={weights!r})" if isinstance(topology_or_W, nx.Graph) or topology.is_schedule(
        topology_or_W) else ""
    for M in mats:
        _require_row_stochastic(M, "epsilon_bound", why)
    n = mats[0].shape[0]
    if n < 2:
        raise ValueError(f"epsilon_bound needs at least 2 agents; got n={n}")
    period = len(mats)
    N = n * (tau + 1)

    beta = min(float(np.min(values[values > 0]))
               for values in (M.data if sp.issparse(M) else M for M in mats))
    no_self = [(t, int(np.flatnonzero(M.diagonal() <= 0)[0])) for t, M in enumerate(mats)
               if np.any(M.diagonal() <= 0)]
    patterns = [sp.csr_array(sp.csr_array(M) != 0, dtype=np.int8) for M in mats]
    if B is None:
        window = _smallest_window(patterns)
        connected, B = window is not None, window or period
    else:
        connected = _strongly_connected_windows(patterns, B)
    holds = connected and not no_self
    B0 = (N - 1) * B

    if holds:
        C, q, log_C, log_eps = _closed_form(beta, B0, lr, L)
        epsilon = _exp(log_eps)
    else:
        C, q, log_C, log_eps, epsilon = math.inf, 1.0, math.inf, math.inf, math.inf
    if data:
        C_data, q_data, epsilon_data, note = _data_dependent(mats, tau, lr, L, data_max_agents,
                                                             data_rtol, data_horizon)
    else:
        C_data, q_data, epsilon_data, note = math.nan, math.nan, math.nan, "not computed (data=False)"
    a2 = f"A2 weights: every non-zero weight >= beta = {beta:.6g}, self-weights included"
    if no_self:
        t, i = no_self[0]
        a2 += f" -- VIOLATED: agent {i} has no self-weight" + (f" at iteration {t}" if period > 1 else "")
    a3 = f"A3 connectivity: the union over every B={B} consecutive iterations is strongly connected"
    if not connected:
        a3 += (" -- VIOLATED" + (f" for B={B}" if B < period else ": not even over a whole period"))
    assumptions = (
        f"A1 bounded updates: ||delta_i^k|| <= lr*L = {lr * L:.6g} (lr={lr:g}, L={L:g})",
        a2,
        a3,
        f"A4 delays: every message at most tau={tau} iterations old; n={n} agents, N=n(tau+1)={N} "
        f"augmented nodes, B0=(N-1)B={B0}",
    )
    return EpsilonBound(
        C=C, q=q, epsilon=epsilon, log10_epsilon=log_eps / math.log(10), log10_C=log_C / math.log(10),
        C_data=C_data, q_data=q_data, epsilon_data=epsilon_data, data_note=note,
        assumptions=assumptions, assumptions_hold=holds, derivation=_DERIVATION,
        n=n, tau=tau, N=N, B=B, B0=B0, beta=beta, lr=lr, L=L,
    )


def _data_dependent(mats: list[Matrix], tau: int, lr: float, L: float, max_agents: int,
                    rtol: float, horizon: int) -> tuple[float, float, float, str]:
    """(C_data, q_data, epsilon_data, note) from the realised, delay-augmented matrices."""
    n, period = mats[0].shape[0], len(mats)
    N = n * (tau + 1)
    if N > max_agents:
        return (math.nan, math.nan, math.nan,
                f"not computed: N=n(tau+1)={N} > data_max_agents={max_agents} (each step is an "
                f"O(N^3) dense product)")
    augmented = [np.ascontiguousarray(delay_augmented(M.toarray() if sp.issparse(M) else M, tau))
                 for M in mats]
    q_data = slem(product(augmented, 0, period), method="dense") ** (1.0 / period)
    if q_data > 1.0 - 1e-12:
        return (math.inf, q_data, math.inf,
                "infinite: the augmented products do not contract (a second eigenvalue of modulus 1)")
    upper, lower, last = _dobrushin_series(augmented, rtol, horizon)
    if math.isinf(upper):
        return (math.inf, q_data, math.inf,
                f"infinite: tau_1 of the products is still 1 after {last} iterations")
    note = (f"sum of tau_1(Phi_m) over m >= 0 in [{lower:.6g}, {upper:.6g}] (upper bound used; "
            f"checkpoints up to m={last}, tail bounded by submultiplicativity)")
    return 2.0 * upper * (1.0 - q_data), q_data, 2.0 * lr * L * upper, note
