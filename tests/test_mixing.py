"""galasim.mixing: closed forms, invariants, sparse vs dense, the ε bound and every bad input."""
from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from galasim import mixing, topology
from galasim._mixing_kernels import dobrushin as dobrushin_kernel

ROOT = Path(__file__).resolve().parents[1]


def dense_slem(W) -> float:
    """Reference: all eigenvalues with numpy, one copy of the eigenvalue nearest 1 removed."""
    ev = np.linalg.eigvals(W.toarray() if sp.issparse(W) else np.asarray(W))
    return float(np.max(np.abs(np.delete(ev, np.argmin(np.abs(ev - 1.0))))))


def brute_dobrushin(M: np.ndarray) -> float:
    return 0.5 * max(np.abs(M[a] - M[b]).sum() for a in range(len(M)) for b in range(len(M)))


# --------------------------------------------------------------------------------------------------
# closed forms (ARCHITECTURE.md)


@pytest.mark.parametrize("n", [2, 3, 4, 5, 8, 13, 64, 257])
def test_directed_ring_slem_is_cos_pi_over_n(n):
    W = mixing.mixing_matrix(topology.ring(n))  # W = (I + S)/2
    assert np.allclose(W, (np.eye(n) + np.roll(np.eye(n), -1, axis=1)) / 2)
    assert mixing.slem(W) == pytest.approx(math.cos(math.pi / n), abs=1e-9)


@pytest.mark.parametrize("n", [3, 4, 5, 6, 7, 10, 101, 300])
def test_undirected_ring_uniform_slem(n):
    # Eigenvalues (1 + 2 cos(2πk/n))/3. The most negative one, -1/3 (n even) or
    # (1 - 2cos(π/n))/3 (n odd), never exceeds k = 1 in modulus: the formula holds for all n >= 3
    # (n = 3 is the triangle, SLEM 0).
    W = mixing.mixing_matrix(topology.ring(n, directed=False))
    moduli = [abs(1 + 2 * math.cos(2 * math.pi * k / n)) / 3 for k in range(1, n)]
    expected = (1 + 2 * math.cos(2 * math.pi / n)) / 3
    assert max(moduli) == pytest.approx(expected, abs=1e-12)
    assert mixing.slem(W) == pytest.approx(expected, abs=1e-9)


def test_undirected_ring_of_two_is_not_the_formula():
    # n = 2: one neighbour, W = 11ᵀ/2, SLEM 0, whereas (1 + 2cos(π))/3 = -1/3.
    assert mixing.slem(mixing.mixing_matrix(topology.ring(2, directed=False))) == 0.0


@pytest.mark.parametrize("n", [3, 4, 5, 8, 31, 200])
def test_lazy_walk_on_undirected_ring_is_cos_squared(n):
    W = mixing.mixing_matrix(topology.ring(n, directed=False), "lazy")
    assert W[0, 0] == 0.5 and W[0, 1] == 0.25
    assert mixing.slem(W) == pytest.approx(math.cos(math.pi / n) ** 2, abs=1e-9)


@pytest.mark.parametrize("n", [2, 3, 5, 16, 50])
def test_complete_graph_uniform_slem_is_zero(n):
    W = mixing.mixing_matrix(topology.complete(n))
    assert np.allclose(W, 1.0 / n)
    assert mixing.slem(W) == pytest.approx(0.0, abs=1e-9)
    assert mixing.averaging_time(W) == 0


@pytest.mark.parametrize("d", range(1, 9))
def test_hypercube_slem_is_d_minus_one_over_d_plus_one(d):
    W = mixing.mixing_matrix(topology.hypercube(d))  # (I + A)/(d + 1)
    assert mixing.slem(W) == pytest.approx((d - 1) / (d + 1), abs=1e-9)


def test_large_rings_and_torus_by_the_sparse_path():
    n = 10_000
    cases = [
        (topology.ring(n), "uniform", math.cos(math.pi / n)),
        (topology.ring(n, directed=False), "uniform", (1 + 2 * math.cos(2 * math.pi / n)) / 3),
        (topology.ring(n, directed=False), "lazy", math.cos(math.pi / n) ** 2),
        (topology.torus(100, 100), "uniform", (3 + 2 * math.cos(2 * math.pi / 100)) / 5),
    ]
    for G, weights, expected in cases:
        W = mixing.mixing_matrix(G, weights)
        assert isinstance(W, sp.csr_array)  # sparse above DENSE_LIMIT
        assert mixing.slem(W) == pytest.approx(expected, abs=1e-9)


def test_large_matrices_are_never_densified(monkeypatch):
    W = mixing.mixing_matrix(topology.ring(10_000))

    def refuse(*args, **kwargs):
        raise AssertionError("a 10,000-agent matrix was densified")

    monkeypatch.setattr(sp.csr_array, "toarray", refuse)
    monkeypatch.setattr(np.linalg, "eigvals", refuse)
    assert mixing.slem(W) == pytest.approx(math.cos(math.pi / 10_000), abs=1e-9)
    assert mixing.dobrushin(W) == 1.0


# --------------------------------------------------------------------------------------------------
# weight rules on random graphs


@st.composite
def connected_graphs(draw, max_n=20):
    """A random connected undirected graph: a random tree plus random extra edges."""
    n = draw(st.integers(2, max_n))
    edges = {(i, draw(st.integers(0, i - 1))) for i in range(1, n)}
    pairs = [(i, j) for i in range(n) for j in range(i)]
    edges |= set(draw(st.lists(st.sampled_from(pairs), max_size=2 * n)))
    G = nx.Graph()
    G.add_nodes_from(range(n))
    G.add_edges_from(edges)
    return G


@st.composite
def strongly_connected_digraphs(draw, max_n=20):
    """A random strongly connected digraph: a random Hamiltonian cycle plus random extra edges."""
    n = draw(st.integers(2, max_n))
    order = draw(st.permutations(range(n)))
    edges = {(order[k], order[(k + 1) % n]) for k in range(n)}
    pairs = [(i, j) for i in range(n) for j in range(n) if i != j]
    edges |= set(draw(st.lists(st.sampled_from(pairs), max_size=2 * n)))
    G = nx.DiGraph()
    G.add_nodes_from(range(n))
    G.add_edges_from(edges)
    return G


def support_matches(W: np.ndarray, G: nx.Graph) -> bool:
    """W[i, j] != 0 exactly on the edges j -> i (both ways if undirected), diagonal aside."""
    D = G if G.is_directed() else G.to_directed()
    expected = np.zeros(W.shape, dtype=bool)
    for j, i in D.edges():
        expected[i, j] = True
    off = ~np.eye(len(W), dtype=bool)
    return bool(np.array_equal((W != 0) & off, expected & off))


@settings(max_examples=60, deadline=None)
@given(connected_graphs())
def test_symmetric_rules_are_doubly_stochastic(G):
    for rule in ("metropolis", "max-degree"):
        W = mixing.mixing_matrix(G, rule)
        assert np.allclose(W, W.T, atol=1e-15)
        assert mixing.is_doubly_stochastic(W)
        assert support_matches(W, G)
    # Best-constant weights: symmetric, unit row and column sums, possibly negative entries.
    W = mixing.mixing_matrix(G, "best-constant")
    assert np.allclose(W, W.T, atol=1e-15)
    assert np.allclose(W.sum(axis=0), 1) and np.allclose(W.sum(axis=1), 1)
    assert mixing.slem(W) <= mixing.slem(mixing.mixing_matrix(G, "max-degree")) + 1e-9


@settings(max_examples=60, deadline=None)
@given(strongly_connected_digraphs())
def test_directed_rules_on_strongly_connected_digraphs(G):
    uniform = mixing.mixing_matrix(G)
    lazy = mixing.mixing_matrix(G, "lazy")
    push = mixing.mixing_matrix(G, "push-sum")
    assert mixing.is_row_stochastic(uniform) and mixing.is_row_stochastic(lazy)
    assert mixing.is_column_stochastic(push)
    for W in (uniform, lazy, push):
        assert support_matches(W, G)
        assert np.all(np.diag(W) > 0)
    indeg = np.array([G.in_degree(i) for i in range(len(G))])
    assert np.allclose(np.diag(uniform), 1 / (indeg + 1))
    assert np.allclose(np.diag(lazy), 0.5)
    outdeg = np.array([G.out_degree(i) for i in range(len(G))])
    assert np.allclose(np.diag(push), 1 / (outdeg + 1))
    # sparse output is the same matrix
    assert np.array_equal(mixing.mixing_matrix(G, sparse=True).toarray(), uniform)


@settings(max_examples=60, deadline=None)
@given(strongly_connected_digraphs(max_n=12))
def test_slem_matches_numpy_and_contraction_bound_holds(G):
    W = mixing.mixing_matrix(G)
    assert mixing.slem(W) == pytest.approx(dense_slem(W), abs=1e-9)
    c = mixing.contraction(W)
    # C q^m bounds the direct products, which converge to 1πᵀ.
    assert np.allclose(c.pi @ W, c.pi) and c.pi.sum() == pytest.approx(1.0)
    phi = np.eye(len(W))
    for m in range(min(c.horizon, 200) + 1):
        assert np.linalg.norm(phi - np.outer(np.ones(len(W)), c.pi), 2) <= c.C * c.q**m * (1 + 1e-9) + 1e-12
        phi = W @ phi


def test_fdla_is_optimal_among_symmetric_weights():
    for G in (nx.path_graph(5), nx.cycle_graph(6), nx.petersen_graph()):
        W = mixing.mixing_matrix(G, "fdla")
        assert np.allclose(W, W.T) and np.allclose(W.sum(axis=1), 1)
        assert support_matches(np.where(np.abs(W) > 1e-9, W, 0), G)
        best = mixing.slem(W)
        for rule in ("metropolis", "max-degree", "best-constant"):
            assert best <= mixing.slem(mixing.mixing_matrix(G, rule)) + 1e-6
    # On a ring the optimum is the best constant (symmetry and convexity).
    ring = nx.cycle_graph(8)
    assert mixing.slem(mixing.mixing_matrix(ring, "fdla")) == pytest.approx(
        mixing.slem(mixing.mixing_matrix(ring, "best-constant")), abs=1e-6)


def test_fdla_without_cvxpy_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "cvxpy", None)
    with pytest.raises(ImportError, match=r"pip install 'galasim\[fdla\]'"):
        mixing.mixing_matrix(nx.cycle_graph(5), "fdla")


# --------------------------------------------------------------------------------------------------
# SLEM: sparse paths agree with dense


def _sparse_cases():
    ba = topology.from_networkx(nx.barabasi_albert_graph(300, 2, seed=3))
    return [
        ("directed ring", topology.ring(250), "uniform"),  # normal
        ("directed ring, 3 peers", topology.ring(300, peers=3), "lazy"),  # normal
        ("undirected ring", topology.ring(400, directed=False), "uniform"),  # symmetric
        ("torus", topology.torus(20, 25), "metropolis"),
        ("random regular", topology.random_regular(500, 3, seed=1), "uniform"),
        ("preferential attachment", ba, "uniform"),  # reversible, not symmetric
        ("preferential attachment", ba, "push-sum"),  # column-stochastic
        ("erdos-renyi digraph", topology.erdos_renyi(300, 0.03, seed=2), "uniform"),  # Arnoldi
        ("exponential", topology.exponential(256), "uniform"),
    ]


@pytest.mark.parametrize("label, G, weights", _sparse_cases(), ids=lambda v: v if isinstance(v, str) else "")
def test_sparse_slem_agrees_with_dense(label, G, weights):
    W = mixing.mixing_matrix(G, weights)
    expected = mixing.slem(W, method="dense")
    assert mixing.slem(W, method="sparse") == pytest.approx(expected, abs=1e-10)
    assert mixing.slem(sp.csr_array(W)) == pytest.approx(expected, abs=1e-10)


def test_plain_lanczos_path_for_expanders_agrees(monkeypatch):
    # Graphs whose LU would fill in are first tried without shift-invert; force that path.
    monkeypatch.setattr(mixing, "_BANDED_FILL", 0)
    for G in (topology.random_regular(400, 4, seed=2), topology.torus(20, 20), topology.ring(300)):
        W = mixing.mixing_matrix(G)
        assert mixing.slem(W, method="sparse") == pytest.approx(mixing.slem(W, method="dense"), abs=1e-10)


def test_sparse_slem_sees_second_unit_eigenvalues():
    two_rings = nx.disjoint_union(topology.ring(20), topology.ring(30))
    periodic = sp.csr_array(np.roll(np.eye(40), 1, axis=1))  # a cyclic permutation
    bipartite_walk = nx.to_numpy_array(nx.cycle_graph(40)) / 2  # eigenvalue -1
    for W in (mixing.mixing_matrix(two_rings), periodic, bipartite_walk):
        assert mixing.slem(W, method="sparse") == 1.0
        assert mixing.slem(W, method="dense") == pytest.approx(1.0, abs=1e-12)
        assert mixing.averaging_time(W) == math.inf


def test_signed_best_constant_weights_by_the_sparse_path():
    G = topology.from_networkx(nx.barabasi_albert_graph(200, 3, seed=5))
    W = mixing.mixing_matrix(G, "best-constant")
    assert W.min() < 0
    assert mixing.slem(W, method="sparse") == pytest.approx(dense_slem(W), abs=1e-10)


def test_large_best_constant_uses_sparse_laplacian_eigenvalues():
    n = 10_000
    W = mixing.mixing_matrix(topology.ring(n, directed=False), "best-constant")
    # Ring Laplacian: λ₁ = 4, λ_{n-1} = 2 - 2cos(2π/n), α* = 2/(λ₁ + λ_{n-1}).
    alpha = 2 / (4 + 2 - 2 * math.cos(2 * math.pi / n))
    assert W[0, 1] == pytest.approx(alpha, rel=1e-9)


def test_spectral_gap_and_averaging_time():
    W = mixing.mixing_matrix(topology.ring(8))
    rate = math.cos(math.pi / 8)
    assert mixing.spectral_gap(W) == pytest.approx(1 - rate, abs=1e-12)
    T = mixing.averaging_time(W, eps=1e-3)
    assert rate**T <= 1e-3 < rate ** (T - 1)
    assert mixing.averaging_time(mixing.mixing_matrix(topology.hypercube(3))) == 7  # 0.5^7 <= 0.01


# --------------------------------------------------------------------------------------------------
# Dobrushin coefficient


@pytest.mark.parametrize("n", [1, 2, 3, 7, 17, 40])
def test_dobrushin_kernel_matches_the_definition(n):
    rng = np.random.default_rng(n)
    M = rng.random((n, n)) * (rng.random((n, n)) < 0.5)
    M[:, 0] += 1e-3  # no empty row
    M /= M.sum(axis=1, keepdims=True)
    assert mixing.dobrushin(M) == pytest.approx(brute_dobrushin(M), abs=1e-14)
    assert mixing.dobrushin(sp.csr_array(M)) == pytest.approx(brute_dobrushin(M), abs=1e-14)


def test_dobrushin_is_submultiplicative_and_one_for_disjoint_rows():
    W = mixing.mixing_matrix(topology.ring(6))
    assert mixing.dobrushin(W) == 1.0  # agents 0 and 3 share no source
    tau = [mixing.dobrushin(np.linalg.matrix_power(W, m)) for m in range(1, 30)]
    assert all(b <= a + 1e-15 for a, b in zip(tau, tau[1:]))
    assert tau[5] <= tau[2] * tau[2] + 1e-15


def test_dobrushin_refuses_large_overlapping_matrices():
    n = mixing.DENSE_LIMIT + 1
    star = sp.lil_array((n, n))  # every agent keeps half and takes half from agent 0
    star[0, 0] = 1.0
    for i in range(1, n):
        star[i, 0] = star[i, i] = 0.5
    with pytest.raises(ValueError, match="every pair of the 2001 rows overlaps"):
        mixing.dobrushin(star.tocsr())


# --------------------------------------------------------------------------------------------------
# products, contraction, delays


def test_product_of_a_schedule_and_of_a_static_matrix():
    s = topology.one_peer_exponential(8)
    assert np.allclose(mixing.product(s, 0, 3), 1 / 8)  # exact averaging over one period
    mats = [mixing.mixing_matrix(s.graph(t)) for t in range(3)]
    expected = np.eye(8)
    for t in range(2, 9):
        expected = mats[t % 3] @ expected
    assert np.allclose(mixing.product(s, 2, 9), expected)
    assert np.allclose(mixing.product(mats, 2, 9), expected)
    W = mixing.mixing_matrix(topology.ring(5))
    assert np.allclose(mixing.product(W, 3, 10), np.linalg.matrix_power(W, 7))
    assert np.allclose(mixing.product(topology.ring(5), 0, 0), np.eye(5))
    Ws = mixing.mixing_matrix(topology.ring(5), sparse=True)
    assert np.allclose(mixing.product(Ws, 0, 7).toarray(), np.linalg.matrix_power(W, 7))


@pytest.mark.parametrize("G, weights", [
    (nx.cycle_graph(20), "metropolis"),
    (topology.torus(4, 5), "uniform"),
    (topology.hypercube(4), "uniform"),
    (topology.random_regular(30, 4, seed=3), "uniform"),
    (topology.ring(16), "uniform"),  # circulant, normal but not symmetric
])
def test_contraction_recovers_slem_for_static_normal_matrices(G, weights):
    W = mixing.mixing_matrix(G, weights)
    c = mixing.contraction(W)
    assert c.q == pytest.approx(mixing.slem(W), abs=1e-6)
    assert c.C == pytest.approx(1.0, abs=1e-9)  # ||W^m - 11ᵀ/n||₂ = SLEM^m exactly
    assert np.allclose(c.pi, 1 / len(W))
    assert c.errors[0] == pytest.approx(1.0) and len(c.errors) == c.horizon + 1


def test_contraction_of_a_schedule_holds_from_every_phase():
    base = topology.erdos_renyi(8, 0.45, seed=1)
    s = topology.rotating(base, 1)
    c = mixing.contraction(s)
    mats = [mixing.mixing_matrix(s.graph(t)) for t in range(s.period)]
    for start in range(s.period):
        limit = mixing.product(mats, start, start + 400 * s.period)[0]
        phi = np.eye(8)
        for m in range(c.horizon + 1):
            err = np.linalg.norm(phi - np.outer(np.ones(8), limit), 2)
            assert err <= c.C * c.q**m * (1 + 1e-9) + 1e-12
            phi = mats[(start + m) % s.period] @ phi


def test_contraction_of_exact_averaging_schedule():
    c = mixing.contraction(topology.one_peer_exponential(16))
    assert 0 < c.q < 1 and c.errors[-1] < 1e-12


def test_delay_augmented_structure_and_row_sums():
    W = mixing.mixing_matrix(topology.ring(5, peers=2))
    tau = 3
    A = mixing.delay_augmented(W, tau)
    n = 5
    assert A.shape == (n * (tau + 1),) * 2
    assert np.allclose(A.sum(axis=1), 1.0) and mixing.is_row_stochastic(A)
    for d in range(1, tau + 1):  # slot (j, d) copies (j, d-1)
        for j in range(n):
            assert A[d * n + j, (d - 1) * n + j] == 1.0 and A[d * n + j].sum() == 1.0
    assert np.allclose(np.diag(A[:n, :n]), np.diag(W))  # own value undelayed
    assert np.allclose(A[:n, tau * n:], W - np.diag(np.diag(W)))  # the others' at depth tau
    assert np.array_equal(mixing.delay_augmented(W, 0), W)
    As = mixing.delay_augmented(sp.csr_array(W), tau)
    assert sp.issparse(As) and np.allclose(As.toarray(), A)


def test_delays_slow_contraction():
    W = mixing.mixing_matrix(topology.ring(8))
    rates = [mixing.contraction(mixing.delay_augmented(W, tau)).q for tau in range(4)]
    slems = [mixing.slem(mixing.delay_augmented(W, tau)) for tau in range(4)]
    assert all(a < b for a, b in zip(rates, rates[1:])), rates
    assert rates == pytest.approx(slems, abs=1e-6)


# --------------------------------------------------------------------------------------------------
# the ε bound


def exact_dobrushin_sum(W: np.ndarray) -> float:
    """Σ_{m>=0} τ₁(W^m) step by step, until the terms are negligible."""
    total, Q, t = 1.0, np.eye(len(W)), 1.0
    while t > 1e-13:
        Q = Q @ W
        t = dobrushin_kernel(Q)
        total += t
    return total


@pytest.mark.parametrize("n, tau", [(4, 0), (8, 0), (16, 0), (6, 1), (5, 3)])
def test_epsilon_bound_closed_form_and_certificate(n, tau):
    lr, L = 7e-4, 2.0
    G = topology.ring(n)
    bound = mixing.epsilon_bound(G, lr, L, tau=tau)
    N = n * (tau + 1)
    beta = 0.5
    B0 = N - 1
    C = 2 * (1 + beta**-B0) / (1 - beta**B0)
    q = (1 - beta**B0) ** (1 / B0)
    assert (bound.n, bound.tau, bound.N, bound.B, bound.B0, bound.beta) == (n, tau, N, 1, B0, beta)
    assert bound.C == pytest.approx(C, rel=1e-12)
    assert bound.q == pytest.approx(q, rel=1e-15)
    assert bound.epsilon == pytest.approx(lr * L * C / (1 - q), rel=1e-9)
    assert bound.log10_epsilon == pytest.approx(math.log10(bound.epsilon), rel=1e-12)
    # The certificate: 2 lr L Σ τ₁(W_aug^m), an upper bound within a few percent.
    exact = exact_dobrushin_sum(mixing.delay_augmented(mixing.mixing_matrix(G), tau))
    if tau == 0:
        assert exact == pytest.approx(n * n / 4, rel=1e-9)  # directed ring: Σ τ₁(W^m) = n²/4
    assert 2 * lr * L * exact <= bound.epsilon_data <= 2 * lr * L * exact * 1.03
    assert bound.q_data == pytest.approx(mixing.slem(mixing.delay_augmented(mixing.mixing_matrix(G), tau)))
    assert bound.C_data == pytest.approx(bound.epsilon_data * (1 - bound.q_data) / (lr * L))
    assert bound.epsilon >= bound.epsilon_data
    assert bound.assumptions_hold
    assert [a[:2] for a in bound.assumptions] == ["A1", "A2", "A3", "A4"]
    assert "beta = 0.5" in bound.assumptions[1] and f"tau={tau}" in bound.assumptions[3]
    assert "= lr L C / (1 - q)" in bound.derivation


def test_epsilon_bound_for_schedules_matrices_and_explicit_B():
    s = topology.one_peer_exponential(8)
    bound = mixing.epsilon_bound(s, 1e-3, 1.0)
    assert bound.B == s.B == 3 and bound.B0 == 7 * 3
    assert bound.epsilon >= bound.epsilon_data > 0
    W = mixing.mixing_matrix(topology.ring(6))
    from_matrix = mixing.epsilon_bound(W, 1e-3, 1.0)
    assert from_matrix.epsilon == mixing.epsilon_bound(topology.ring(6), 1e-3, 1.0).epsilon
    wider = mixing.epsilon_bound(W, 1e-3, 1.0, B=2)
    assert wider.B0 == 10 and wider.epsilon > from_matrix.epsilon


def test_epsilon_bound_grows_with_delay_and_survives_overflow():
    logs = [mixing.epsilon_bound(topology.ring(16), 1e-3, 1.0, tau=t, data=False).log10_epsilon
            for t in range(4)]
    assert all(a < b for a, b in zip(logs, logs[1:]))
    huge = mixing.epsilon_bound(topology.ring(10_000), 1e-3, 1.0, tau=2)
    assert huge.epsilon == math.inf and huge.C == math.inf and huge.q == 1.0
    # ε ≈ 2 lr L B0 β^(-2 B0) with B0 = N - 1
    B0 = 30_000 - 1
    expected = math.log10(2e-3 * B0) + 2 * B0 * math.log10(2)
    assert huge.log10_epsilon == pytest.approx(expected, rel=1e-9)
    assert math.isnan(huge.epsilon_data) and "data_max_agents" in huge.data_note


def test_epsilon_bound_reports_violated_assumptions():
    cut = nx.DiGraph([(0, 1), (1, 2), (2, 1)])  # agent 0 hears nobody: not strongly connected
    bound = mixing.epsilon_bound(cut, 1e-3, 1.0)
    assert not bound.assumptions_hold and bound.epsilon == math.inf
    assert "VIOLATED" in bound.assumptions[2]
    # ... yet the realised products contract (everyone follows agent 0): a finite certificate.
    assert math.isfinite(bound.epsilon_data)
    no_self = np.array([[0.0, 1.0], [0.5, 0.5]])
    bound = mixing.epsilon_bound(no_self, 1e-3, 1.0)
    assert not bound.assumptions_hold and "VIOLATED: agent 0 has no self-weight" in bound.assumptions[1]
    split = nx.disjoint_union(topology.ring(3), topology.ring(3))
    bound = mixing.epsilon_bound(split, 1e-3, 1.0)
    assert bound.epsilon == math.inf and bound.epsilon_data == math.inf


# --------------------------------------------------------------------------------------------------
# bad inputs


@pytest.mark.parametrize("call, message", [
    (lambda: mixing.mixing_matrix(topology.ring(4), "optimal"), "weights must be one of uniform, metropolis"),
    (lambda: mixing.mixing_matrix(topology.ring(4), "metropolis"), "need a symmetric .*graph"),
    (lambda: mixing.mixing_matrix(topology.ring(4), "best-constant"), "need a symmetric"),
    (lambda: mixing.mixing_matrix(nx.Graph([(0, 1), (2, 3)]), "best-constant"), "connected graph"),
    (lambda: mixing.mixing_matrix(nx.Graph([("a", "b")])), "numbered 0..1"),
    (lambda: mixing.mixing_matrix(topology.ring(4), sparse="yes"), "sparse must be"),
    (lambda: mixing.mixing_matrix(nx.cycle_graph(mixing.FDLA_MAX_AGENTS + 1), "fdla"), "FDLA_MAX_AGENTS"),
    (lambda: mixing.slem(np.ones((2, 3)) / 3), "square matrix"),
    (lambda: mixing.slem(np.array([[0.5, 0.2], [0.1, 0.9]])), "rows or columns summing to 1"),
    (lambda: mixing.slem(np.eye(3), method="fast"), "auto, dense, sparse"),
    (lambda: mixing.slem(np.array([[np.nan, 1.0], [0.0, 1.0]])), "finite"),
    (lambda: mixing.dobrushin(np.ones((2, 3))), "square matrix"),
    (lambda: mixing.dobrushin(np.array([[1.5, -0.5], [0.0, 1.0]])), "non-negative"),
    (lambda: mixing.is_row_stochastic(np.ones((3, 2))), "square matrix"),
    (lambda: mixing.averaging_time(np.eye(2), eps=1.0), "eps must be"),
    (lambda: mixing.delay_augmented(np.eye(3), -1), "tau .* from 0 to"),
    (lambda: mixing.delay_augmented(np.full((2, 2), 0.3), 1), "rows summing to 1"),
    (lambda: mixing.product(np.eye(2), 3, 2), "stop .* from 3 to"),
    (lambda: mixing.product([], 0, 1), "empty sequence"),
    (lambda: mixing.contraction(sp.eye_array(mixing.DENSE_LIMIT + 1)), "DENSE_LIMIT"),
    (lambda: mixing.contraction(np.array([[0.5, 0.6], [0.5, 0.5]])), "rows summing to 1"),
    (lambda: mixing.epsilon_bound(topology.ring(4), 0.0, 1.0), "lr .* > 0"),
    (lambda: mixing.epsilon_bound(topology.ring(4), -1e-3, 1.0), "lr .* > 0"),
    (lambda: mixing.epsilon_bound(topology.ring(4), 1e-3, 0.0), "L .* > 0"),
    (lambda: mixing.epsilon_bound(topology.ring(4), 1e-3, 1.0, tau=-1), "tau .* from 0 to"),
    (lambda: mixing.epsilon_bound(topology.ring(4), 1e-3, 1.0, B=0), "B .* from 1 to"),
    (lambda: mixing.epsilon_bound(np.array([[0.5, 0.6], [0.5, 0.5]]), 1e-3, 1.0), "row-stochastic"),
    (lambda: mixing.epsilon_bound(topology.erdos_renyi(6, 0.6, seed=1), 1e-3, 1.0, weights="push-sum"),
     "push-sum"),
    (lambda: mixing.epsilon_bound(nx.star_graph(5), 1e-3, 1.0, weights="best-constant"),  # hub: -3/7
     "non-negative weights"),
    (lambda: mixing.epsilon_bound(np.eye(1), 1e-3, 1.0), "at least 2 agents"),
])
def test_bad_inputs_raise_clear_value_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_wrong_kinds_of_objects_raise_type_errors():
    with pytest.raises(TypeError, match="mixing_matrix"):
        mixing.slem(topology.ring(4))
    with pytest.raises(TypeError, match="product"):
        mixing.mixing_matrix(topology.one_peer_exponential(4))
    with pytest.raises(TypeError, match="networkx graph"):
        mixing.mixing_matrix(np.eye(3))


# --------------------------------------------------------------------------------------------------
# documentation, example, benchmark


def test_every_public_function_is_documented_with_examples():
    for name in mixing.__all__:
        obj = getattr(mixing, name)
        if callable(obj) and not isinstance(obj, type):
            doc = obj.__doc__ or ""
            assert "Examples" in doc and "Parameters" in doc, name


def test_example_script_writes_a_plot(tmp_path):
    out = tmp_path / "mixing.png"
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "mixing_analysis.py"), "--out", str(out)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert out.stat().st_size > 10_000
    assert "978533" in done.stdout  # ring, n = 1024: ceil(log 0.01 / log cos(π/1024))


def test_bench_slem_quick():
    from galasim.bench_mixing import bench_slem

    table = bench_slem(quick=True, repeats=1)
    assert set(table["method"]) == {"slem", "numpy.linalg.eigvals"}
    assert (table["median_s"] > 0).all()
    ring = table[(table["topology"] == "ring") & (table["method"] == "slem")]
    assert ring["slem"].tolist() == pytest.approx([math.cos(math.pi / n) for n in ring["agents"]], abs=1e-9)
