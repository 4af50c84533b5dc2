"""Tests of galasim.topology: closed-form edge sets, schedules, validation messages, file loading."""
from __future__ import annotations

import itertools
import math

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from galasim import topology as T


def edges(G: nx.DiGraph) -> set[tuple[int, int]]:
    return set(G.edges)


def shift_edges(n: int, shifts) -> set[tuple[int, int]]:
    """Edges i -> i + s (mod n) for every agent i and shift s."""
    return {(i, (i + s) % n) for i in range(n) for s in shifts}


# --------------------------------------------------------------------------------------------------
# static builders


def test_ring_directed_exact_edges_and_direction():
    G = T.ring(5, peers=2)
    assert sorted(G.nodes) == list(range(5))
    assert edges(G) == shift_edges(5, [1, 2])
    assert G.graph["name"] == "ring(n=5, peers=2, directed)"
    # GALA semantics: agent r sends to r+1, i.e. r+1 receives from r.
    one = T.ring(4)
    assert one.has_edge(0, 1) and not one.has_edge(1, 0)
    assert list(one.predecessors(1)) == [0]


def test_ring_undirected_exact_edges():
    assert edges(T.ring(6, peers=2, directed=False)) == shift_edges(6, [1, -1, 2, -2])
    # peers = n//2 is the complete graph; the antipodal neighbour appears once.
    assert edges(T.ring(6, peers=3, directed=False)) == edges(T.complete(6))
    assert edges(T.ring(2, directed=False)) == {(0, 1), (1, 0)}


@pytest.mark.parametrize(
    ("kwargs", "bad"),
    [
        (dict(n=1), "got 1"),
        (dict(n=5, peers=5), "got 5"),
        (dict(n=5, peers=0), "got 0"),
        (dict(n=6, peers=4, directed=False), "got 4"),
    ],
)
def test_ring_rejects_bad_arguments(kwargs, bad):
    with pytest.raises(ValueError, match=bad):
        T.ring(**kwargs)


def test_ring_rejects_a_non_integer_with_a_type_error():
    with pytest.raises(TypeError, match=r"got 2\.0"):
        T.ring(2.0)


def test_torus_edges():
    G = T.torus(3, 4)
    assert G.number_of_edges() == 48 and {d for _, d in G.out_degree} == {4}
    assert set(G.successors(5)) == {1, 9, 4, 6}  # (1,1): up (0,1), down (2,1), left, right
    # A side of length 2 makes the two vertical neighbours coincide: they are merged.
    assert T.torus(2, 3).number_of_edges() == 6 * 3
    assert edges(T.torus(2, 2)) == {(0, 1), (1, 0), (0, 2), (2, 0), (1, 3), (3, 1), (2, 3), (3, 2)}
    # A side of length 1 contributes nothing: a 1 x n torus is the undirected ring.
    assert edges(T.torus(1, 5)) == edges(T.ring(5, directed=False))
    with pytest.raises(ValueError, match="rows=1, cols=1"):
        T.torus(1, 1)
    with pytest.raises(ValueError, match="got 0"):
        T.torus(0, 4)


@pytest.mark.parametrize("dim", [1, 2, 3, 5])
def test_hypercube_degrees(dim):
    G = T.hypercube(dim)
    n = 2**dim
    assert G.number_of_nodes() == n and G.number_of_edges() == n * dim
    assert all(G.out_degree(i) == dim and G.in_degree(i) == dim for i in G)
    assert all(bin(u ^ v).count("1") == 1 for u, v in G.edges)


def test_hypercube_small_exact_and_bad_dim():
    assert edges(T.hypercube(2)) == {(0, 1), (1, 0), (0, 2), (2, 0), (1, 3), (3, 1), (2, 3), (3, 2)}
    with pytest.raises(ValueError, match="got 0"):
        T.hypercube(0)


def test_complete():
    G = T.complete(5)
    assert G.number_of_edges() == 20 and nx.number_of_selfloops(G) == 0
    with pytest.raises(ValueError, match="got 1"):
        T.complete(1)


@pytest.mark.parametrize("n", [2, 4, 8, 16, 32])
def test_exponential_out_degree_is_log2n_for_powers_of_two(n):
    G = T.exponential(n)
    assert {d for _, d in G.out_degree} == {int(math.log2(n))}


def test_exponential_exact_edges():
    assert edges(T.exponential(5)) == shift_edges(5, [1, 2, 4])
    assert edges(T.exponential(2)) == {(0, 1), (1, 0)}


def test_random_regular():
    G = T.random_regular(10, 3, seed=4)
    assert {d for _, d in G.out_degree} == {3} and {d for _, d in G.in_degree} == {3}
    assert all(G.has_edge(v, u) for u, v in G.edges)  # undirected: both directions
    assert edges(G) == edges(T.random_regular(10, 3, seed=4))  # deterministic in the seed
    with pytest.raises(ValueError, match="n=5, d=3"):
        T.random_regular(5, 3)  # n*d odd
    with pytest.raises(ValueError, match="got 6"):
        T.random_regular(6, 6)
    # A 1-regular graph on 6 agents is a perfect matching: never connected.
    with pytest.raises(ValueError, match=r"agent \d cannot be reached from agent 0.*seed"):
        T.random_regular(6, 1)


def test_erdos_renyi():
    G = T.erdos_renyi(12, 0.5, seed=1)
    assert nx.is_strongly_connected(G) and nx.number_of_selfloops(G) == 0
    assert edges(G) == edges(nx.gnp_random_graph(12, 0.5, seed=1, directed=True))
    assert edges(T.erdos_renyi(4, 1.0)) == edges(T.complete(4))
    with pytest.raises(ValueError, match=r"agent 1 cannot be reached from agent 0.*larger p"):
        T.erdos_renyi(5, 0.0)
    with pytest.raises(ValueError, match="got 1.5"):
        T.erdos_renyi(5, 1.5)


# --------------------------------------------------------------------------------------------------
# schedules


@pytest.mark.parametrize("n", [2, 3, 5, 8, 9, 16, 33])
def test_one_peer_exponential_period_and_union(n):
    s = T.one_peer_exponential(n)
    assert T.is_schedule(s)
    assert s.period == len(s) == math.ceil(math.log2(n))
    assert all(G.out_degree(i) == 1 for G in s for i in G)
    assert edges(s.union(0, s.period)) == edges(T.exponential(n))
    assert edges(s.graph(s.period + 1)) == shift_edges(n, [2 if s.period > 1 else 1])  # periodic


@pytest.mark.parametrize(
    ("n", "B"),
    [
        # n=8: shifts 1, 2, 4. Shift 1 alone is a ring, but {2} and {2, 4} only reach even offsets,
        # so a window needs all three shifts.
        (8, 3),
        # n=6: shifts 1, 2, 4; {2, 4} generates only the even offsets {0, 2, 4} of Z_6.
        (6, 3),
        # n=5: shifts 1, 2, 4 are each coprime with 5, so every single graph is a ring.
        (5, 1),
        # n=12: shifts 1, 2, 4, 8; the window {2, 4, 8} misses the odd offsets.
        (12, 4),
        (2, 1),
    ],
)
def test_one_peer_exponential_B(n, B):
    assert T.one_peer_exponential(n).B == B


def test_rotating_ring_peers():
    s = T.rotating(T.ring(6, peers=3), peers=2)
    # Agent 0's out-neighbours by offset: 1, 2, 3; visited two at a time: {1,2}, {3,1}, {2,3}.
    assert s.period == 3
    assert [set(s.graph(t).successors(0)) for t in range(4)] == [{1, 2}, {1, 3}, {2, 3}, {1, 2}]
    assert edges(s.union(0, 3)) == edges(T.ring(6, peers=3))
    assert s.B == 1  # each graph has out-degree 2 with offsets {1,2}/{1,3}/{2,3}: all rings or better


def test_rotating_complete_one_peer():
    s = T.rotating(T.complete(4), peers=1)
    # At iteration t everyone sends to i + t + 1: shifts 1, 2, 3 (mod 4); shift 2 alone splits Z_4.
    assert s.period == 3
    assert [edges(G) for G in s] == [shift_edges(4, [k]) for k in (1, 2, 3)]
    assert s.B == 2


def test_rotating_period_is_lcm_over_agents():
    G = T.ring(5)
    G.add_edges_from([(0, 2), (0, 3), (1, 3)])  # out-degrees: agent 0 -> 3, agent 1 -> 2, others 1
    s = T.rotating(G, peers=1)
    assert s.period == 6
    assert edges(s.union(2, 6)) == edges(G)
    assert T.rotating(G, peers=2).period == 3  # agent 0: 3/gcd(3,2) = 3; agent 1 sends to both
    same = T.rotating(T.ring(5), peers=3)  # peers >= out-degree: everyone sends everywhere always
    assert same.period == 1 and edges(same.graph(0)) == edges(T.ring(5))
    # Out-degree 3 < peers = 4 still repeats every iteration (not 3 / gcd(3, 4) = 3).
    assert T.rotating(T.complete(4), peers=4).period == 1
    with pytest.raises(ValueError, match="got 0"):
        T.rotating(T.ring(5), peers=0)


def test_schedule_B_of_a_rotating_cycle():
    cycle = [nx.DiGraph([(0, 1)]), nx.DiGraph([(1, 2)]), nx.DiGraph([(2, 0)])]
    for G in cycle:
        G.add_nodes_from(range(3))
    s = T.Schedule(cycle, name="cycle")
    assert (s.n, s.period, s.B, s.name) == (3, 3, 3, "cycle")
    assert edges(s.union(1, 2)) == {(1, 2), (2, 0)}
    assert edges(s.union(2, 100)) == {(0, 1), (1, 2), (2, 0)}


def test_schedule_is_immutable():
    source = T.ring(4)
    s = T.Schedule([source])
    source.add_edge(1, 0)
    assert not s.graph(0).has_edge(1, 0)  # copied
    with pytest.raises(nx.NetworkXError):
        s.graph(0).add_edge(1, 0)  # frozen
    with pytest.raises(AttributeError):
        s.B = 7
    with pytest.raises(ValueError, match="got -1"):
        s.graph(-1)


def test_schedule_rejects_bad_graphs():
    with pytest.raises(ValueError, match="empty"):
        T.Schedule([])
    with pytest.raises(ValueError, match="graph 1 of the schedule has 5 agents"):
        T.Schedule([T.ring(4), T.ring(5)])
    loop = T.ring(4)
    loop.add_edge(2, 2)
    with pytest.raises(ValueError, match=r"graph 1 of the schedule has a self-loop at agent 2"):
        T.Schedule([T.ring(4), loop])
    single = nx.DiGraph()
    single.add_node(0)
    with pytest.raises(ValueError, match="n=1"):
        T.Schedule([single])


def test_schedule_never_strongly_connected_names_agent_and_period():
    a = nx.DiGraph([(0, 1), (1, 0)])
    a.add_node(2)
    b = nx.DiGraph([(1, 0), (2, 1)])
    with pytest.raises(ValueError, match=r"period 2.*agent 2 cannot be reached from agent 0"):
        T.Schedule([a, b])


def brute_force_B(graphs, n):
    P = len(graphs)
    for B in range(1, P + 1):
        windows = (nx.compose_all([graphs[(s + k) % P] for k in range(B)]) for s in range(P))
        if all(nx.is_strongly_connected(W) for W in windows):
            return B
    return None


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_schedule_B_matches_brute_force(data):
    n = data.draw(st.integers(2, 5))
    pairs = [(u, v) for u, v in itertools.permutations(range(n), 2)]
    edge_sets = data.draw(st.lists(st.sets(st.sampled_from(pairs), max_size=n), min_size=1, max_size=6))
    graphs = []
    for es in edge_sets:
        G = nx.DiGraph(list(es))
        G.add_nodes_from(range(n))
        graphs.append(G)
    expected = brute_force_B(graphs, n)
    if expected is None:
        with pytest.raises(ValueError, match="not B-strongly connected"):
            T.Schedule(graphs)
    else:
        assert T.Schedule(graphs).B == expected


# --------------------------------------------------------------------------------------------------
# validation and user graphs


def test_validate_accepts_and_returns_graph():
    G = T.ring(4)
    assert T.validate(G) is G


def test_validate_too_few_agents():
    G = nx.DiGraph()
    G.add_node(0)
    with pytest.raises(ValueError, match="n=1"):
        T.validate(G)


def test_validate_self_loop_names_agent():
    G = T.ring(5)
    G.add_edge(3, 3)
    with pytest.raises(ValueError, match=r"self-loop at agent 3"):
        T.validate(G)


def test_validate_disconnected_names_agent():
    halves = nx.DiGraph([(0, 1), (1, 0), (2, 3), (3, 2)])
    with pytest.raises(ValueError, match=r"agent 2 cannot be reached from agent 0: .*not strongly"):
        T.validate(halves)
    sink = nx.DiGraph([(0, 1), (1, 2), (2, 0), (0, 3)])
    with pytest.raises(ValueError, match=r"agent 3 cannot reach agent 0"):
        T.validate(sink)


def test_validate_rejects_non_index_nodes_and_undirected():
    with pytest.raises(ValueError, match=r"node 'a'.*from_networkx"):
        T.validate(nx.DiGraph([("a", "b"), ("b", "a")]))
    with pytest.raises(TypeError, match="Graph"):
        T.validate(nx.Graph([(0, 1)]))


def test_from_networkx_relabels_sorted_and_stores_labels():
    G = T.from_networkx(nx.DiGraph([("10", "2"), ("2", "1"), ("1", "10")]))
    assert G.graph["labels"] == ["1", "2", "10"]  # integer strings sort numerically
    assert edges(G) == {(2, 1), (1, 0), (0, 2)}


def test_from_networkx_undirected_and_insertion_order():
    G = T.from_networkx(nx.Graph([("x", 1), (1, 2.5)]))  # incomparable labels: insertion order
    assert G.graph["labels"] == ["x", 1, 2.5]
    assert edges(G) == {(0, 1), (1, 0), (1, 2), (2, 1)}


def test_from_networkx_rejects_duplicate_agents():
    with pytest.raises(ValueError, match=r"duplicate agents: labels 1 and '1'"):
        T.from_networkx(nx.Graph([(1, "1"), ("1", 2), (2, 1)]))


def test_from_networkx_disconnected_names_original_label():
    with pytest.raises(ValueError, match=r"agent 2 \(label 'c'\) cannot be reached"):
        T.from_networkx(nx.Graph([("a", "b"), ("c", "d")]))


# --------------------------------------------------------------------------------------------------
# files


def test_load_graphml_round_trip(tmp_path):
    G = T.ring(12, peers=2)
    path = tmp_path / "ring.graphml"
    nx.write_graphml(G, path)
    loaded = T.load(path)
    # GraphML ids are strings; 12 agents make sure "10" sorts after "9".
    assert edges(loaded) == edges(G)
    assert loaded.graph["labels"] == [str(i) for i in range(12)]


def test_load_undirected_graphml(tmp_path):
    path = tmp_path / "torus.graphml"
    nx.write_graphml(T.torus(3, 3).to_undirected(), path)
    assert edges(T.load(path)) == edges(T.torus(3, 3))


@pytest.mark.parametrize("suffix", [".txt", ".edgelist", ".csv", ".tsv"])
def test_load_edge_list_round_trip(tmp_path, suffix):
    G = T.ring(11)
    lines = ["# sender receiver", ""] + [f"{u},{v}" if u % 2 else f"{u}\t {v}  # edge" for u, v in G.edges]
    path = tmp_path / f"ring{suffix}"
    path.write_text("\n".join(lines) + "\n")
    assert edges(T.load(path)) == edges(G)


def test_load_corrupt_edge_list_names_path_and_line(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("0 1\n1 2 3\n2 0\n")
    with pytest.raises(ValueError, match=r"bad\.txt, line 2"):
        T.load(path)


def test_load_duplicate_agents_in_edge_list(tmp_path):
    path = tmp_path / "dup.txt"
    path.write_text("0 1\n01 0\n")
    with pytest.raises(ValueError, match="duplicate agents"):
        T.load(path)


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        T.load(tmp_path / "nope.txt")
    bad_xml = tmp_path / "bad.graphml"
    bad_xml.write_text("<graphml><graph>")
    with pytest.raises(ValueError, match=r"bad\.graphml"):
        T.load(bad_xml)
    other = tmp_path / "g.json"
    other.write_text("{}")
    with pytest.raises(ValueError, match=r"'\.json'"):
        T.load(other)


# --------------------------------------------------------------------------------------------------
# build by name


@pytest.mark.parametrize("name", T.NAMES)
def test_build_every_name(name):
    topo = T.build(name, 16)
    if T.is_schedule(topo):
        assert topo.n == 16
    else:
        assert T.validate(topo).number_of_nodes() == 16


def test_build_dispatch_and_defaults():
    assert T.build("torus", 12).graph["name"] == "torus(rows=3, cols=4)"
    assert edges(T.build("torus", 16)) == edges(T.torus(4, 4))
    assert edges(T.build("ring", 8, peers=2)) == edges(T.ring(8, peers=2))
    assert edges(T.build("ring-undirected", 8)) == edges(T.ring(8, directed=False))
    assert edges(T.build("hypercube", 8)) == edges(T.hypercube(3))
    assert {d for _, d in T.build("random-regular", 10).out_degree} == {3}
    assert edges(T.build("random-regular", 10, d=4, seed=2)) == edges(T.random_regular(10, 4, seed=2))
    p = 2 * math.log(20) / 20
    assert edges(T.build("erdos-renyi", 20, seed=3)) == edges(T.erdos_renyi(20, p, seed=3))
    assert T.build("one-peer-exponential", 8).B == 3


@pytest.mark.parametrize(
    ("name", "n", "bad"),
    [
        ("torus", 7, "n=7"),
        ("torus", 2, "n=2"),
        ("hypercube", 12, "n=12"),
        ("ring", 1, "got 1"),
        ("mesh", 8, "'mesh'.*ring, ring-undirected, torus, hypercube"),
    ],
)
def test_build_errors(name, n, bad):
    with pytest.raises(ValueError, match=bad):
        T.build(name, n)


# --------------------------------------------------------------------------------------------------
# CSR arrays


def test_csr_exact():
    indptr, indices = T.in_neighbours_csr(T.exponential(4))
    assert indptr.dtype == np.int64 and indices.dtype == np.int64
    assert indptr.tolist() == [0, 2, 4, 6, 8]
    assert indices.tolist() == [2, 3, 0, 3, 0, 1, 1, 2]
    indptr, indices = T.out_neighbours_csr(T.exponential(4))
    assert indices.tolist() == [1, 2, 2, 3, 0, 3, 0, 1]


@settings(max_examples=80, deadline=None)
@given(st.data())
def test_ring_strongly_connected_and_csr_agrees(data):
    n = data.draw(st.integers(2, 40))
    directed = data.draw(st.booleans())
    peers = data.draw(st.integers(1, n - 1 if directed else n // 2))
    G = T.ring(n, peers=peers, directed=directed)
    assert nx.is_strongly_connected(G)
    for csr, neighbours in ((T.in_neighbours_csr, G.predecessors), (T.out_neighbours_csr, G.successors)):
        indptr, indices = csr(G)
        assert indptr.dtype == np.int64 and indices.dtype == np.int64 and len(indptr) == n + 1
        for i in range(n):
            assert indices[indptr[i]:indptr[i + 1]].tolist() == sorted(neighbours(i))
