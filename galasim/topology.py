"""Communication graphs for gossip: builders, validation and time-varying schedules.

Every graph is a :class:`networkx.DiGraph` on the agents ``0..n-1`` in which an edge ``j -> i`` means
**agent i receives from agent j** (j sends to i). Graphs have no self-loops: an agent's own share is
implicit in the mixing weights. ``G.graph["name"]`` holds a short description.

A time-varying topology is a :class:`Schedule`: one graph per iteration, repeated periodically. Its
graphs need not be strongly connected one by one; the schedule must be *B-strongly connected* (the
union over every B consecutive iterations is strongly connected), assumption (A3) of the GALA theory.

Examples
--------
>>> from galasim import topology
>>> G = topology.ring(8)
>>> G.graph["name"], G.has_edge(0, 1)
('ring(n=8, peers=1, directed)', True)
>>> topology.build("one-peer-exponential", 8).B
3
"""
from __future__ import annotations

import itertools
import math
import numbers
import os
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from pathlib import Path

import networkx as nx
import numpy as np

from galasim._validation import check_memory, integer

__all__ = [
    "NAMES",
    "Schedule",
    "build",
    "complete",
    "erdos_renyi",
    "check_delays",
    "exponential",
    "from_networkx",
    "hypercube",
    "in_neighbours_csr",
    "is_schedule",
    "load",
    "one_peer_exponential",
    "out_neighbours_csr",
    "random_regular",
    "ring",
    "rotating",
    "torus",
    "validate",
]

NAMES = (
    "ring",
    "ring-undirected",
    "torus",
    "hypercube",
    "complete",
    "exponential",
    "one-peer-exponential",
    "random-regular",
    "erdos-renyi",
)

EDGE_LIST_SUFFIXES = (".txt", ".edgelist", ".csv", ".tsv")

_CONNECTIVITY_WHY = (
    "the graph is not strongly connected (gossip needs every agent to hear from every other, "
    "possibly indirectly)"
)


# --------------------------------------------------------------------------------------------------
# argument checks and messages


# Memory of a networkx DiGraph, measured with tracemalloc (networkx 3.6): 730-830 bytes per agent
# and 96-150 per edge. The lower ends make the size guard's estimate a lower bound.
NODE_BYTES = 700
EDGE_BYTES = 90
#: erdos_renyi draws one random number per ordered pair of agents, in Python (about 1 µs each).
MAX_PAIR_DRAWS = 10**8


def _check_size(what: str, n: int, edges: int) -> None:
    """Refuse, before building it, a graph whose networkx form would not fit in memory."""
    check_memory(
        f"{what} with {n} agents and {edges} edges", NODE_BYTES * n + EDGE_BYTES * edges,
        "use fewer agents",
    )


def _agent(G: nx.DiGraph, i: int) -> str:
    """'agent i', with the original label when from_networkx renamed it."""
    labels = G.graph.get("labels")
    if labels is None or str(labels[i]) == str(i):
        return f"agent {i}"
    return f"agent {i} (label {labels[i]!r})"


def _digraph(name: str, n: int, edges: Iterable[tuple[int, int]]) -> nx.DiGraph:
    G = nx.DiGraph(name=name)
    G.add_nodes_from(range(n))  # isolated agents must still exist
    G.add_edges_from(edges)
    return G


def _log2_ceil(n: int) -> int:
    return (n - 1).bit_length()


# --------------------------------------------------------------------------------------------------
# validation


def _check_agents(G: object, what: str) -> int:
    """Check that ``G`` is a DiGraph on the agents 0..n-1 with n >= 2; return n."""
    if not isinstance(G, nx.DiGraph):
        raise TypeError(
            f"{what} must be a networkx.DiGraph (edge j -> i: agent i receives from j); got "
            f"{type(G).__name__}; use topology.from_networkx for undirected or relabelled graphs"
        )
    n = G.number_of_nodes()
    if n < 2:
        raise ValueError(f"{what} has n={n} agent(s); gossip needs at least 2 agents (n >= 2)")
    for v in G:
        if not (isinstance(v, numbers.Integral) and 0 <= v < n):
            raise ValueError(
                f"{what} has node {v!r}, but agents must be numbered 0..{n - 1}; pass it through "
                f"topology.from_networkx to relabel arbitrary node labels"
            )
    return n


def _check_self_loops(G: nx.DiGraph, what: str) -> None:
    loops = sorted(nx.nodes_with_selfloops(G))
    if loops:
        i = loops[0]
        raise ValueError(
            f"{what} has a self-loop at {_agent(G, i)}: an agent cannot send to itself (it always "
            f"keeps its own share); remove the edge ({i}, {i})"
        )


def _agent_key(label: Hashable) -> Hashable:
    """The agent a label denotes: integers and integer strings ('7', '07') are numbers."""
    if isinstance(label, numbers.Integral):
        return int(label)
    text = str(label).strip()
    return int(text) if re.fullmatch(r"[+-]?\d+", text) else text


def _check_labels(G: nx.DiGraph, what: str) -> None:
    labels = G.graph.get("labels")
    if labels is None:
        return
    if len(labels) != G.number_of_nodes():
        raise ValueError(
            f"{what} has {len(labels)} labels in graph['labels'] for {G.number_of_nodes()} agents; "
            f"there must be exactly one label per agent"
        )
    seen: dict[Hashable, Hashable] = {}
    for label in labels:
        key = _agent_key(label)
        if key in seen:
            raise ValueError(
                f"{what} has duplicate agents: labels {seen[key]!r} and {label!r} both denote agent "
                f"{key!r}; every agent needs a distinct label"
            )
        seen[key] = label


def _connectivity_problem(G: nx.DiGraph) -> str | None:
    """Name an agent that cannot be reached from agent 0 or cannot reach it, or None if none."""
    for reached, relation in ((nx.descendants(G, 0), "cannot be reached from"),
                              (nx.ancestors(G, 0), "cannot reach")):
        missing = sorted(set(G) - reached - {0})
        if missing:
            return f"{_agent(G, missing[0])} {relation} {_agent(G, 0)}"
    return None


def validate(G: nx.DiGraph) -> nx.DiGraph:
    """Check a communication graph and return it unchanged.

    The checks every user graph goes through: it is a DiGraph on the agents ``0..n-1`` with
    ``n >= 2``, its optional ``graph["labels"]`` (set by :func:`from_networkx`) name distinct agents,
    it has no self-loops, and it is strongly connected.

    Parameters
    ----------
    G : networkx.DiGraph
        Edge ``j -> i`` means agent i receives from agent j.

    Returns
    -------
    networkx.DiGraph
        ``G`` itself.

    Raises
    ------
    TypeError
        If ``G`` is not a DiGraph.
    ValueError
        Naming the problem (too few agents, a node that is not an agent index, duplicate labels,
        a self-loop, an agent cut off from agent 0) and what is allowed.

    Examples
    --------
    >>> import networkx as nx
    >>> validate(ring(4)).number_of_nodes()
    4
    >>> validate(nx.DiGraph([(0, 1), (1, 0), (1, 2)]))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    ValueError: agent 2 cannot reach agent 0: the graph is not strongly connected ...
    """
    _check_agents(G, "graph")
    _check_labels(G, "graph")
    _check_self_loops(G, "graph")
    problem = _connectivity_problem(G)
    if problem:
        raise ValueError(f"{problem}: {_CONNECTIVITY_WHY}")
    return G


def _require_connected(G: nx.DiGraph, hint: str) -> nx.DiGraph:
    """Raise like validate, with a hint on how to draw a connected random graph instead."""
    problem = _connectivity_problem(G)
    if problem:
        raise ValueError(f"{G.graph['name']}: {problem}: {_CONNECTIVITY_WHY}; {hint}")
    return G


# --------------------------------------------------------------------------------------------------
# static builders


def ring(n: int, peers: int = 1, directed: bool = True) -> nx.DiGraph:
    """GALA's ring: agent r sends to the next ``peers`` agents.

    Parameters
    ----------
    n : int
        Number of agents, ``n >= 2``.
    peers : int, default 1
        Directed: agent r sends to ``r+1, ..., r+peers`` (mod n), ``1 <= peers <= n-1``.
        Undirected: agent r sends to ``r±1, ..., r±peers`` (mod n), ``1 <= peers <= n//2``
        (at ``peers = n//2`` the graph is already complete; larger values only repeat neighbours).
    directed : bool, default True
        The paper's experiments use the directed ring with one peer.

    Returns
    -------
    networkx.DiGraph

    Examples
    --------
    >>> G = ring(4, peers=2)
    >>> sorted(G.successors(3))
    [0, 1]
    >>> sorted(ring(5, directed=False).successors(0))
    [1, 4]
    """
    n = integer("ring: n (number of agents)", n, 2)
    kind = "directed" if directed else "undirected"
    peers = integer(f"ring: peers (n={n}, {kind})", peers, 1, n - 1 if directed else n // 2)
    _check_size(f"ring(n={n}, peers={peers}, {kind})", n, n * peers * (1 if directed else 2))
    offsets = range(1, peers + 1) if directed else [s * k for k in range(1, peers + 1) for s in (1, -1)]
    edges = ((r, (r + k) % n) for r in range(n) for k in offsets)
    return _digraph(f"ring(n={n}, peers={peers}, {kind})", n, edges)


def torus(rows: int, cols: int) -> nx.DiGraph:
    """2-D torus: agent ``(r, c)``, numbered ``r*cols + c``, exchanges with its 4 grid neighbours.

    Edges go both ways; coinciding neighbours (a side of length 2) are merged, and a side of length 1
    contributes no edges, so ``torus(1, n)`` is the undirected ring.

    Parameters
    ----------
    rows, cols : int
        Side lengths, each ``>= 1`` with ``rows * cols >= 2``.

    Returns
    -------
    networkx.DiGraph

    Examples
    --------
    >>> G = torus(3, 4)
    >>> G.number_of_edges(), sorted(G.successors(0))
    (48, [1, 3, 4, 8])
    """
    rows = integer("torus: rows", rows, 1)
    cols = integer("torus: cols", cols, 1)
    n = rows * cols
    if n < 2:
        raise ValueError(f"torus: rows*cols must be >= 2 agents; got rows={rows}, cols={cols}")
    _check_size(f"torus(rows={rows}, cols={cols})", n, 4 * n)
    steps = ((1, 0), (-1, 0), (0, 1), (0, -1))
    edges = (
        (r * cols + c, ((r + dr) % rows) * cols + (c + dc) % cols)
        for r in range(rows) for c in range(cols) for dr, dc in steps
    )
    # Self-loops appear only along a side of length 1.
    return _digraph(f"torus(rows={rows}, cols={cols})", n, ((u, v) for u, v in edges if u != v))


def hypercube(dim: int) -> nx.DiGraph:
    """Hypercube on ``n = 2**dim`` agents: agents differing in one bit exchange both ways.

    Parameters
    ----------
    dim : int
        Dimension, ``>= 1``.

    Returns
    -------
    networkx.DiGraph

    Examples
    --------
    >>> sorted(hypercube(3).successors(5))
    [1, 4, 7]
    """
    # Beyond 62 even the agent count leaves int64 (and 1 << dim itself gets slow).
    dim = integer("hypercube: dim", dim, 1, 62)
    n = 1 << dim
    _check_size(f"hypercube(dim={dim})", n, n * dim)
    edges = ((i, i ^ (1 << b)) for i in range(n) for b in range(dim))
    return _digraph(f"hypercube(dim={dim}, n={n})", n, edges)


def complete(n: int) -> nx.DiGraph:
    """Complete graph: every agent sends to every other.

    Parameters
    ----------
    n : int
        Number of agents, ``n >= 2``.

    Returns
    -------
    networkx.DiGraph

    Examples
    --------
    >>> complete(4).number_of_edges()
    12
    """
    n = integer("complete: n (number of agents)", n, 2)
    _check_size(f"complete(n={n})", n, n * (n - 1))
    return _digraph(f"complete(n={n})", n, itertools.permutations(range(n), 2))


def exponential(n: int) -> nx.DiGraph:
    """Static exponential graph: agent i sends to ``i + 2**k`` (mod n), ``k < ceil(log2 n)``.

    Parameters
    ----------
    n : int
        Number of agents, ``n >= 2``.

    Returns
    -------
    networkx.DiGraph

    Examples
    --------
    >>> sorted(exponential(8).successors(6))
    [0, 2, 7]
    """
    n = integer("exponential: n (number of agents)", n, 2)
    _check_size(f"exponential(n={n})", n, n * _log2_ceil(n))
    # 2**k < n for every k used, so targets are distinct and never the sender itself.
    edges = ((i, (i + (1 << k)) % n) for i in range(n) for k in range(_log2_ceil(n)))
    return _digraph(f"exponential(n={n})", n, edges)


def random_regular(n: int, d: int, seed: int = 0) -> nx.DiGraph:
    """Random d-regular undirected graph (``networkx.random_regular_graph``), edges both ways.

    Parameters
    ----------
    n : int
        Number of agents, ``n >= 2``.
    d : int
        Degree, ``1 <= d <= n-1`` with ``n*d`` even.
    seed : int, default 0
        Random seed; the same seed gives the same graph.

    Returns
    -------
    networkx.DiGraph

    Raises
    ------
    ValueError
        On bad arguments, or if the drawn graph is disconnected (naming an unreachable agent).

    Examples
    --------
    >>> G = random_regular(10, 3, seed=0)
    >>> G.number_of_edges(), {G.out_degree(i) for i in G}
    (30, {3})
    """
    n = integer("random_regular: n (number of agents)", n, 2)
    d = integer(f"random_regular: degree d (n={n})", d, 1, n - 1)
    if n * d % 2:
        raise ValueError(f"random_regular: n*d must be even; got n={n}, d={d}")
    _check_size(f"random_regular(n={n}, d={d})", n, n * d)
    U = nx.random_regular_graph(d, n, seed=seed)
    edges = itertools.chain(U.edges, ((v, u) for u, v in U.edges))
    G = _digraph(f"random-regular(n={n}, d={d}, seed={seed})", n, edges)
    return _require_connected(G, "try another seed or a larger degree d")


def erdos_renyi(n: int, p: float, seed: int = 0) -> nx.DiGraph:
    """Directed Erdős–Rényi graph G(n, p): each ordered pair is an edge with probability p.

    Parameters
    ----------
    n : int
        Number of agents, ``n >= 2``.
    p : float
        Edge probability in ``[0, 1]``.
    seed : int, default 0
        Random seed; the same seed gives the same graph.

    Returns
    -------
    networkx.DiGraph

    Raises
    ------
    ValueError
        On bad arguments, or if the drawn graph is not strongly connected (naming an agent).

    Examples
    --------
    >>> erdos_renyi(6, 1.0).number_of_edges()
    30
    """
    n = integer("erdos_renyi: n (number of agents)", n, 2)
    if not (isinstance(p, numbers.Real) and 0 <= p <= 1):
        raise ValueError(f"erdos_renyi: p must be a probability in [0, 1], got {p!r}")
    if n * (n - 1) > MAX_PAIR_DRAWS:
        raise ValueError(
            f"erdos_renyi(n={n}) would draw n(n-1) = {n * (n - 1)} random numbers, one per pair of "
            f"agents, more than the limit of {MAX_PAIR_DRAWS}; use fewer agents or random-regular"
        )
    _check_size(f"erdos_renyi(n={n}, p={float(p):g})", n, round(p * n * (n - 1)))
    D = nx.gnp_random_graph(n, p, seed=seed, directed=True)
    G = _digraph(f"erdos-renyi(n={n}, p={float(p):g}, seed={seed})", n, D.edges)
    return _require_connected(G, "try another seed or a larger p")


# --------------------------------------------------------------------------------------------------
# user graphs


def _ordered_labels(G: nx.Graph) -> list[Hashable]:
    labels = list(G)
    try:
        return sorted(labels, key=_agent_key)
    except TypeError:  # mixed numbers and names have no order: keep insertion order
        return labels


def from_networkx(G: nx.Graph) -> nx.DiGraph:
    """Turn any networkx graph into a validated communication graph on agents ``0..n-1``.

    Nodes are relabelled in sorted order when the labels are comparable (integer strings such as
    GraphML ids sort numerically), otherwise in insertion order; ``graph["labels"][i]`` is the
    original label of agent i. An undirected graph sends both ways along every edge. Parallel edges
    of multigraphs merge. The edges keep their ``delay`` attribute (the only one galasim reads, see
    :func:`check_delays`).

    Parameters
    ----------
    G : networkx.Graph or networkx.DiGraph
        For a DiGraph, edge ``u -> v`` means u sends to v.

    Returns
    -------
    networkx.DiGraph

    Raises
    ------
    TypeError
        If ``G`` is not a networkx graph.
    ValueError
        If the result fails :func:`validate` (e.g. labels ``1`` and ``'1'`` name the same agent),
        or parallel edges of a multigraph carry different delays.

    Examples
    --------
    >>> import networkx as nx
    >>> G = from_networkx(nx.Graph([("b", "a"), ("b", "c")]))
    >>> G.graph["labels"], sorted(G.edges)
    (['a', 'b', 'c'], [(0, 1), (1, 0), (1, 2), (2, 1)])
    """
    if not isinstance(G, nx.Graph):
        raise TypeError(f"from_networkx expects a networkx graph; got {type(G).__name__}")
    labels = _ordered_labels(G)
    index = {label: i for i, label in enumerate(labels)}
    edges = [(index[u], index[v]) for u, v in G.edges()]
    if not G.is_directed():
        edges += [(v, u) for u, v in edges]
    D = _digraph(G.graph.get("name") or f"graph(n={len(labels)})", len(labels), edges)
    D.graph["labels"] = labels
    nx.set_edge_attributes(D, _edge_delays(G, index), "delay")
    return validate(D)


def _edge_delays(G: nx.Graph, index: dict[Hashable, int]) -> dict[tuple[int, int], object]:
    """The ``delay`` of every edge of ``G`` that has one, both ways for an undirected graph."""
    delays: dict[tuple[int, int], object] = {}
    for u, v, data in G.edges(data=True):
        if "delay" not in data:
            continue
        delay = data["delay"]
        for edge in [(index[u], index[v])] + ([] if G.is_directed() else [(index[v], index[u])]):
            if edge in delays and delays[edge] != delay:
                raise ValueError(
                    f"parallel edges {u!r} -> {v!r} have different delays {delays[edge]!r} and "
                    f"{delay!r}; a communication graph has one delay per edge: merge them"
                )
            delays[edge] = delay
    return delays


def check_delays(graph: nx.DiGraph | Schedule) -> None:
    """Check the per-edge delays: every ``delay`` attribute (1 when absent) a finite number >= 0.

    Parameters
    ----------
    graph : networkx.DiGraph or Schedule

    Raises
    ------
    ValueError
        Naming the first edge whose delay is not a finite number >= 0.

    Examples
    --------
    >>> G = ring(3)
    >>> G.edges[0, 1]["delay"] = "abc"
    >>> check_delays(G)
    Traceback (most recent call last):
        ...
    ValueError: the delay of edge 0 -> 1 must be a finite number >= 0 (in mean compute times), got 'abc'
    """
    for G in graph if is_schedule(graph) else [graph]:
        for u, v, delay in G.edges(data="delay", default=1.0):
            try:
                ok = not isinstance(delay, bool) and math.isfinite(float(delay)) and float(delay) >= 0
            except (TypeError, ValueError):
                ok = False
            if not ok:
                edge = f"{u} -> {v}"
                labels = G.graph.get("labels")
                if labels is not None:
                    edge += f" (labels {labels[u]!r} -> {labels[v]!r})"
                raise ValueError(
                    f"the delay of edge {edge} must be a finite number >= 0 (in mean compute "
                    f"times), got {delay!r}"
                )


def _read_graphml(path: Path) -> nx.Graph:
    try:
        return nx.read_graphml(path)
    except (ET.ParseError, nx.NetworkXError) as exc:  # ParseError names line and column
        raise ValueError(f"cannot parse GraphML file {path}: {exc}") from exc


def _read_edge_list(path: Path) -> nx.DiGraph:
    G = nx.DiGraph()
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            fields = [x for x in re.split(r"[,\s]+", line.split("#", 1)[0]) if x]
            if not fields:
                continue
            if len(fields) != 2:
                raise ValueError(
                    f"cannot parse edge list {path}, line {lineno}: expected two agent labels "
                    f"'u v' (u sends to v), separated by spaces, tabs or a comma; got {line.rstrip()!r}"
                )
            G.add_edge(*fields)
    return G


def load(path: str | os.PathLike[str]) -> nx.DiGraph:
    """Read a communication graph from a file and pass it through :func:`from_networkx`.

    Formats, by suffix: ``.graphml`` (``networkx.read_graphml``; an undirected file sends both
    ways), or an edge list (``.txt``, ``.edgelist``, ``.csv``, ``.tsv``): one edge ``u v`` per line,
    separated by whitespace or a comma, meaning u sends to v; ``#`` starts a comment (a CSV header
    must be commented out).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    networkx.DiGraph
        Nodes ``0..n-1``; ``graph["labels"]`` holds the labels found in the file.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If ``path`` is a directory, the file cannot be parsed (naming path and line) or the graph
        fails :func:`validate`.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "triangle.txt"
    >>> _ = path.write_text("# u sends to v\\na b\\nb c\\nc a\\n")
    >>> G = load(path)
    >>> G.graph["labels"], sorted(G.edges)
    (['a', 'b', 'c'], [(0, 1), (1, 2), (2, 0)])
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"topology file {path} is a directory; name a .graphml or edge list file in it")
    if not path.is_file():
        raise FileNotFoundError(f"topology file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".graphml":
        raw = _read_graphml(path)
    elif suffix in EDGE_LIST_SUFFIXES:
        raw = _read_edge_list(path)
    else:
        raise ValueError(
            f"cannot load topology {path}: unknown file type {suffix!r}; use .graphml or an edge "
            f"list ({', '.join(EDGE_LIST_SUFFIXES)})"
        )
    raw.graph["name"] = raw.graph.get("name") or path.name
    return from_networkx(raw)


# --------------------------------------------------------------------------------------------------
# time-varying topologies


class Schedule:
    """A time-varying topology: graph ``graphs[t mod period]`` is used at iteration t.

    Immutable: the graphs are copied and frozen. The individual graphs need not be strongly
    connected, but the schedule must be B-strongly connected for some ``B <= period``.

    Parameters
    ----------
    graphs : sequence of networkx.DiGraph
        Non-empty; every graph on the same agents ``0..n-1`` (``n >= 2``), without self-loops.
    name : str, optional
        Short description; defaults to ``"schedule(n=..., period=...)"``.

    Attributes
    ----------
    n : int
        Number of agents.
    period : int
        Number of graphs; ``len(schedule)`` too.
    B : int
        The smallest ``B <= period`` such that the union over every B consecutive iterations
        (cyclically) is strongly connected.
    name : str

    Raises
    ------
    ValueError
        If a graph is malformed, or if even the union over a whole period is not strongly
        connected (naming an agent that is cut off).

    Examples
    --------
    >>> s = Schedule([ring(4), ring(4, peers=2)], name="demo")
    >>> s.n, s.period, s.B, s.graph(3) is s.graph(1)
    (4, 2, 1, True)
    """

    __slots__ = ("_graphs", "_name", "_B")

    def __init__(self, graphs: Sequence[nx.DiGraph], name: str | None = None) -> None:
        graphs = tuple(graphs)
        if not graphs:
            raise ValueError("a Schedule needs at least one graph; got an empty sequence")
        n = _check_agents(graphs[0], "graph 0 of the schedule")
        for t, G in enumerate(graphs):
            what = f"graph {t} of the schedule"
            if _check_agents(G, what) != n:
                raise ValueError(
                    f"{what} has {G.number_of_nodes()} agents but graph 0 has {n}; every graph of a "
                    f"schedule must be on the same agents 0..{n - 1}"
                )
            _check_self_loops(G, what)
        self._graphs = tuple(nx.freeze(G.copy()) for G in graphs)
        self._name = name or f"schedule(n={n}, period={len(graphs)})"
        self._B = self._smallest_B()

    @property
    def n(self) -> int:
        return self._graphs[0].number_of_nodes()

    @property
    def period(self) -> int:
        return len(self._graphs)

    @property
    def B(self) -> int:
        return self._B

    @property
    def name(self) -> str:
        return self._name

    def __len__(self) -> int:
        return self.period

    def __iter__(self) -> Iterator[nx.DiGraph]:
        return iter(self._graphs)

    def __repr__(self) -> str:
        return f"Schedule({self._name!r}, n={self.n}, period={self.period}, B={self._B})"

    def graph(self, t: int) -> nx.DiGraph:
        """The (frozen) graph used at iteration ``t >= 0``.

        Examples
        --------
        >>> one_peer_exponential(8).graph(4).has_edge(0, 2)
        True
        """
        t = integer("Schedule.graph: iteration t", t, 0)
        return self._graphs[t % self.period]

    def union(self, start: int, length: int) -> nx.DiGraph:
        """Union of the graphs of iterations ``start, ..., start + length - 1``.

        Examples
        --------
        >>> s = one_peer_exponential(8)
        >>> sorted(s.union(1, 2).successors(0))
        [2, 4]
        """
        start = integer("Schedule.union: start", start, 0)
        length = integer("Schedule.union: length", length, 1)
        # Beyond one period the union no longer grows.
        graphs = (self.graph(start + k) for k in range(min(length, self.period)))
        edges = itertools.chain.from_iterable(G.edges for G in graphs)
        name = f"union of {self._name} over iterations {start}..{start + length - 1}"
        return _digraph(name, self.n, edges)

    def _smallest_B(self) -> int:
        whole = self.union(0, self.period)
        problem = _connectivity_problem(whole)
        if problem:
            raise ValueError(
                f"schedule {self._name!r} is not B-strongly connected for any B up to its period "
                f"{self.period}: in the union over a whole period, {problem}"
            )
        # Every window of B+1 iterations contains one of B, so the property is monotone in B:
        # binary search between 1 and the period (which is known to work).
        low, high = 1, self.period
        while low < high:
            mid = (low + high) // 2
            if self._every_window_connected(mid):
                high = mid
            else:
                low = mid + 1
        return low

    def _every_window_connected(self, width: int) -> bool:
        # Slide a window of `width` graphs around the period, keeping edge multiplicities so each
        # step costs one graph added and one removed instead of rebuilding the union.
        edges = [list(G.edges) for G in self._graphs]
        counts = Counter(itertools.chain.from_iterable(edges[:width]))
        for start in range(self.period):
            union = _digraph("window", self.n, (e for e, c in counts.items() if c > 0))
            if not nx.is_strongly_connected(union):
                return False
            counts.subtract(edges[start])
            counts.update(edges[(start + width) % self.period])
        return True


def is_schedule(obj: object) -> bool:
    """Whether ``obj`` is a time-varying topology (:class:`Schedule`) rather than a static graph.

    Examples
    --------
    >>> is_schedule(one_peer_exponential(4)), is_schedule(ring(4))
    (True, False)
    """
    return isinstance(obj, Schedule)


def one_peer_exponential(n: int) -> Schedule:
    """One-peer exponential schedule: at iteration t agent i sends only to ``i + 2**(t mod L)``.

    ``L = ceil(log2 n)`` is the period; the union over a period is :func:`exponential`.

    Parameters
    ----------
    n : int
        Number of agents, ``n >= 2``.

    Returns
    -------
    Schedule

    Examples
    --------
    >>> s = one_peer_exponential(8)
    >>> s.period, s.B, sorted(s.graph(2).successors(0))
    (3, 3, [4])
    """
    n = integer("one_peer_exponential: n (number of agents)", n, 2)
    # One graph (all n agents, n edges) per iteration of the period.
    _check_size(f"one_peer_exponential(n={n})", n * _log2_ceil(n), n * _log2_ceil(n))
    graphs = [
        _digraph(f"one-peer-exponential(n={n}, t={k})", n, ((i, (i + (1 << k)) % n) for i in range(n)))
        for k in range(_log2_ceil(n))
    ]
    return Schedule(graphs, name=f"one-peer-exponential(n={n})")


def rotating(graph: nx.DiGraph, peers: int) -> Schedule:
    """GALA's rotating peer schedule over the out-neighbours of a static graph.

    Agent i orders its out-neighbours j by ring offset ``(j - i) mod n`` and visits them
    cyclically, ``peers`` at a time: at iteration t it sends to those with indices
    ``(t*peers + k) mod outdeg_i``, ``k < min(peers, outdeg_i)``. The period is the least common
    multiple over agents of ``outdeg_i / gcd(outdeg_i, peers)`` (1 for agents with
    ``outdeg_i <= peers``, which send to all their out-neighbours every iteration).

    Parameters
    ----------
    graph : networkx.DiGraph
        A valid static graph (see :func:`validate`).
    peers : int
        Out-peers per iteration, ``>= 1``.

    Returns
    -------
    Schedule

    Examples
    --------
    >>> s = rotating(ring(6, peers=3), peers=2)
    >>> s.period, sorted(s.graph(1).successors(0))
    (3, [1, 3])
    """
    validate(graph)
    peers = integer("rotating: peers", peers, 1)
    n = graph.number_of_nodes()
    targets = [sorted(graph.successors(i), key=lambda j, i=i: (j - i) % n) for i in range(n)]
    period = math.lcm(*(1 if len(ts) <= peers else len(ts) // math.gcd(len(ts), peers) for ts in targets))
    base = graph.graph.get("name", f"graph(n={n})")

    def at(t: int) -> nx.DiGraph:
        edges = (
            (i, ts[(t * peers + k) % len(ts)])
            for i, ts in enumerate(targets) for k in range(min(peers, len(ts)))
        )
        return _digraph(f"rotating({base}, peers={peers}, t={t})", n, edges)

    return Schedule([at(t) for t in range(period)], name=f"rotating({base}, peers={peers})")


# --------------------------------------------------------------------------------------------------
# by name


def _torus_by_n(n: int) -> nx.DiGraph:
    rows = max(r for r in range(1, math.isqrt(n) + 1) if n % r == 0)
    if rows < 2:
        # Prime n: the next integer is even and >= 4 (hence composite) except after n = 2.
        raise ValueError(
            f"torus needs n = rows*cols with rows, cols >= 2, so a composite n; got n={n} (prime); "
            f"try n={n + 1 if n > 2 else 4}"
        )
    return torus(rows, n // rows)


def _hypercube_by_n(n: int) -> nx.DiGraph:
    if n & (n - 1):
        low = 1 << (n.bit_length() - 1)
        raise ValueError(f"hypercube needs n to be a power of 2; got n={n}; try n={low} or n={2 * low}")
    return hypercube(n.bit_length() - 1)


def _random_3_regular(n: int, seed: int) -> nx.DiGraph:
    # The user named no degree, so the message must not be about one.
    if n < 4 or n % 2:
        raise ValueError(f"random-regular needs an even number of agents >= 4, got {n}")
    return random_regular(n, 3, seed)


def build(
    name: str,
    n: int,
    *,
    peers: int = 1,
    seed: int = 0,
    p: float | None = None,
    d: int | None = None,
) -> nx.DiGraph | Schedule:
    """Build a topology by name (one of :data:`NAMES`) on n agents.

    Parameters
    ----------
    name : str
        ``ring`` / ``ring-undirected`` (use ``peers``), ``torus`` (rows = largest divisor of n not
        above sqrt(n); needs rows >= 2), ``hypercube`` (n a power of 2), ``complete``,
        ``exponential``, ``one-peer-exponential`` (a :class:`Schedule`), ``random-regular`` (use
        ``d``, default 3, and ``seed``), ``erdos-renyi`` (use ``p``, default ``min(1, 2 ln n / n)``,
        and ``seed``).
    n : int
        Number of agents, ``n >= 2``.
    peers, seed, p, d
        Used only by the names that take them (listed above); ignored otherwise.

    Returns
    -------
    networkx.DiGraph or Schedule

    Raises
    ------
    ValueError
        For an unknown name (listing :data:`NAMES`) or arguments the builder rejects.

    Examples
    --------
    >>> build("torus", 12).graph["name"]
    'torus(rows=3, cols=4)'
    >>> build("one-peer-exponential", 8).period
    3
    """
    n = integer(f"build({name!r}): n (number of agents)", n, 2)
    builders: dict[str, Callable[[], nx.DiGraph | Schedule]] = {
        "ring": lambda: ring(n, peers),
        "ring-undirected": lambda: ring(n, peers, directed=False),
        "torus": lambda: _torus_by_n(n),
        "hypercube": lambda: _hypercube_by_n(n),
        "complete": lambda: complete(n),
        "exponential": lambda: exponential(n),
        "one-peer-exponential": lambda: one_peer_exponential(n),
        "random-regular": lambda: random_regular(n, d, seed) if d is not None else _random_3_regular(n, seed),
        "erdos-renyi": lambda: erdos_renyi(n, min(1.0, 2 * math.log(n) / n) if p is None else p, seed),
    }
    if name not in builders:
        raise ValueError(f"unknown topology {name!r}; choose one of: {', '.join(NAMES)}")
    return builders[name]()


# --------------------------------------------------------------------------------------------------
# arrays for the Cython simulator


def _csr(n: int, neighbours: Callable[[int], Iterable[int]]) -> tuple[np.ndarray, np.ndarray]:
    lists = [sorted(neighbours(i)) for i in range(n)]
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum([len(nbrs) for nbrs in lists], out=indptr[1:])
    indices = np.fromiter(itertools.chain.from_iterable(lists), dtype=np.int64, count=int(indptr[-1]))
    return indptr, indices


def in_neighbours_csr(G: nx.DiGraph) -> tuple[np.ndarray, np.ndarray]:
    """In-neighbours (senders) of every agent in CSR form.

    Parameters
    ----------
    G : networkx.DiGraph
        A graph on the agents ``0..n-1``.

    Returns
    -------
    indptr, indices : numpy.ndarray of int64
        ``indices[indptr[i]:indptr[i+1]]`` are the agents i receives from, ascending.

    Examples
    --------
    >>> indptr, indices = in_neighbours_csr(ring(4, peers=2))
    >>> indptr.tolist(), indices.tolist()
    ([0, 2, 4, 6, 8], [2, 3, 0, 3, 0, 1, 1, 2])
    """
    return _csr(G.number_of_nodes(), G.predecessors)


def out_neighbours_csr(G: nx.DiGraph) -> tuple[np.ndarray, np.ndarray]:
    """Out-neighbours (receivers) of every agent in CSR form.

    Parameters
    ----------
    G : networkx.DiGraph
        A graph on the agents ``0..n-1``.

    Returns
    -------
    indptr, indices : numpy.ndarray of int64
        ``indices[indptr[i]:indptr[i+1]]`` are the agents i sends to, ascending.

    Examples
    --------
    >>> indptr, indices = out_neighbours_csr(ring(4, peers=2))
    >>> indptr.tolist(), indices.tolist()
    ([0, 2, 4, 6, 8], [1, 2, 2, 3, 0, 3, 0, 1])
    """
    return _csr(G.number_of_nodes(), G.successors)
