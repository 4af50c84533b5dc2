"""``galasim.simulate``: validate a configuration, run an engine, and report the three numbers."""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import networkx as nx
import numpy as np
import pandas as pd

from galasim import topology as topo
from galasim._validation import (  # CERTIFICATE_AUTO_MAX_ROWS: also read by `galasim sweep --help`
    CERTIFICATE_AUTO_EXACT_MAX_ROWS, CERTIFICATE_AUTO_MAX_ROWS, INT32_MAX, SEED_MAX, check_sync_freq, choice, integer, positive,
)
from galasim.gossip import ALLREDUCE, GALA, PUSH_SUM, Protocol, protocol as make_protocol
from galasim.gossip import repair as repair_rule
from galasim.sim import allreduce
from galasim.sim.cost import check_run_cost
from galasim.sim.models import (
    ComputeModel,
    DelayModel,
    Faults,
    UpdateModel,
    parse_compute,
    parse_delays,
    parse_faults,
    parse_updates,
)
from galasim.sim import fault_log
from galasim.sim.events import LOG_DTYPE, as_frame
from galasim.sim.result import TRAJECTORY_COLUMNS, SimResult
from galasim.sim.spec import FAULT_CRASH, FAULT_LINK, FAULT_REJOIN, EngineSpec

ENGINES = ("cython", "reference")


def _resolve_topology(topology: Any, agents: int | None, peers: int, seed: int):
    """A validated DiGraph or Schedule, and its display name."""
    if isinstance(topology, str):
        n = 8 if agents is None else integer("agents", agents, 2)
        return topo.build(topology, n, peers=peers, seed=seed), topology
    if topo.is_schedule(topology):
        graph = topology
    elif isinstance(topology, nx.Graph):
        # A multigraph goes through from_networkx, which merges its parallel edges.
        simple = isinstance(topology, nx.DiGraph) and not topology.is_multigraph()
        graph = topo.validate(topology) if simple else topo.from_networkx(topology)
    else:
        raise TypeError(
            f"topology must be a name ({', '.join(topo.NAMES)}), a networkx graph or a "
            f"galasim.topology.Schedule; got {type(topology).__name__}"
        )
    if agents is not None and agents != _order(graph):
        raise ValueError(f"agents={agents} does not match the topology's {_order(graph)} agents")
    return graph, graph.name if topo.is_schedule(graph) else graph.graph.get("name", "graph")


def _order(graph) -> int:
    return graph.n if topo.is_schedule(graph) else graph.number_of_nodes()


def _edge_layout(graph) -> tuple[list[tuple[int, int]], np.ndarray, list]:
    """Union edges in receiver order, the per-iteration activity mask and the period's graphs."""
    graphs = list(graph) if topo.is_schedule(graph) else [graph]
    edges = sorted({(u, v) for g in graphs for u, v in g.edges()}, key=lambda e: (e[1], e[0]))
    index = {e: k for k, e in enumerate(edges)}
    active = np.zeros((len(graphs), len(edges)), dtype=np.uint8)
    for t, g in enumerate(graphs):
        for e in g.edges():
            active[t, index[e]] = 1
    return edges, active, graphs


# Crash-and-repair allocates every edge the repair rule can create; beyond this many (or 4 times
# the original edges) the per-agent edge scans would dominate the run, so the request is refused.
MAX_POSSIBLE_EDGES = 4096


def _with_bypasses(graph, edges, active, proto: Protocol, faults: Faults, n: int):
    """Add the bypass edges crash-and-repair may switch on (off at the start): edges, active, on."""
    on = np.ones(len(edges), dtype=np.uint8)
    if not faults.dynamic:
        return edges, active, on
    if proto.code != GALA:
        raise ValueError(f"faults={str(faults)!r}: repair, rejoin and crash-rate need a gala-family protocol, "
                         f"got {proto.name}")
    if faults.repair is None:
        return edges, active, on
    if topo.is_schedule(graph):
        raise ValueError(f"faults={str(faults)!r}: repair needs a static graph, got the schedule {graph.name!r}")
    crashable = set(range(n)) if faults.crash_rate > 0 else {a for a, _ in faults.crashes}
    possible = repair_rule.possible_edges(edges, crashable)
    limit = max(MAX_POSSIBLE_EDGES, 4 * len(edges))
    if len(possible) > limit:
        raise ValueError(f"faults={str(faults)!r}: the repair rule may need {len(possible)} edges on this graph, "
                         f"more than {limit}; use fewer agents or name the crashes (crash:A@T)")
    possible = sorted(possible, key=lambda e: (e[1], e[0]))
    original = set(edges)
    on = np.array([e in original for e in possible], dtype=np.uint8)
    return possible, np.ones((1, len(possible)), dtype=np.uint8), on


def _fault_rows(faults: Faults, n: int, link_time: np.ndarray):
    """Explicit faults as engine rows: crashes (by agent, then time), rejoins, then link removals."""
    rows = []
    for agent, t in sorted(faults.crashes):
        if agent >= n:
            raise ValueError(f"crash:{agent}@{t:g} names agent {agent}, but agents are 0..{n - 1}")
        follows = any(a == agent and r > t for a, r in faults.rejoins)
        rows.append((t, FAULT_CRASH, agent, int(follows)))
    for agent, t in sorted(faults.rejoins):
        if agent >= n:
            raise ValueError(f"rejoin:{agent}@{t:g} names agent {agent}, but agents are 0..{n - 1}")
        crashed = sum(1 for a, c in faults.crashes if a == agent and c < t)
        rejoined = sum(1 for a, r in faults.rejoins if a == agent and r < t)
        if crashed <= rejoined and faults.crash_rate == 0:
            raise ValueError(f"rejoin:{agent}@{t:g} has no earlier crash of agent {agent} to end")
        rows.append((t, FAULT_REJOIN, agent, 0))
    rows += [(float(link_time[e]), FAULT_LINK, e, 0) for e in np.flatnonzero(np.isfinite(link_time))]
    return (np.array([r[0] for r in rows], dtype=np.float64), np.array([r[1] for r in rows], dtype=np.int64),
            np.array([r[2] for r in rows], dtype=np.int64), np.array([r[3] for r in rows], dtype=np.int8))


def build_spec(
    graph,
    proto: Protocol,
    *,
    dim: int,
    iterations: int,
    lr: float,
    L: float,
    updates: UpdateModel,
    compute: ComputeModel,
    delays: DelayModel,
    faults: Faults,
    seed: int,
    certificate: bool | str,
    samples: int,
    record_events: bool = False,
    max_events: int | None = None,
) -> EngineSpec:
    """Lower a validated configuration to the flat :class:`EngineSpec` both engines read."""
    n = _order(graph)
    edges, active, graphs = _edge_layout(graph)
    edges, active, edge_on = _with_bypasses(graph, edges, active, proto, faults, n)
    E = len(edges)
    if certificate == "auto":  # the tightest certificate whose cost stays small for this state size
        certificate = ("exact" if n + E <= CERTIFICATE_AUTO_EXACT_MAX_ROWS
                       else n + E <= CERTIFICATE_AUTO_MAX_ROWS)
    track = certificate in (True, "exact")
    src = np.array([u for u, _ in edges], dtype=np.int64)
    dst = np.array([v for _, v in edges], dtype=np.int64)
    in_indptr = np.searchsorted(dst, np.arange(n + 1)).astype(np.int64)
    out_edges = np.array(sorted(range(E), key=lambda e: (src[e], dst[e])), dtype=np.int64)
    out_indptr = np.searchsorted(src[out_edges], np.arange(n + 1)).astype(np.int64)

    setup_rng = np.random.default_rng(seed)
    agent_factor = compute.agent_factors(n, setup_rng)
    targets = setup_rng.normal(size=(n, dim))
    edge_factor = np.ones(E)
    if delays.per_edge:
        for k, (u, v) in enumerate(edges):
            attrs = next((g.edges[u, v] for g in graphs if g.has_edge(u, v)), {})
            edge_factor[k] = float(attrs.get("delay", 1.0))
            if not (math.isfinite(edge_factor[k]) and edge_factor[k] >= 0):
                raise ValueError(f"edge {u}->{v} has delay {attrs.get('delay')!r}; need a finite number >= 0")

    crash_time = np.full(n, np.inf)
    for agent, t in faults.crashes:
        if agent >= n:
            raise ValueError(f"crash:{agent}@{t:g} names agent {agent}, but agents are 0..{n - 1}")
        crash_time[agent] = min(crash_time[agent], t)
    link_time = np.full(E, np.inf)
    edge_index = {e: k for k, e in enumerate(edges)}
    for u, v, t in faults.link_removals:
        if (u, v) not in edge_index or not edge_on[edge_index[u, v]]:
            raise ValueError(f"link:{u}->{v}@{t:g}: {u}->{v} is not an edge of the topology")
        link_time[edge_index[u, v]] = min(link_time[edge_index[u, v]], t)
    fault_time, fault_kind, fault_target, fault_awaits = _fault_rows(faults, n, link_time)

    return EngineSpec(
        protocol=proto.code,
        n=n,
        dim=dim,
        iterations=iterations,
        lr=lr,
        L=L,
        update=updates.code,
        sync_freq=int(proto.sync_freq) if math.isfinite(proto.sync_freq) else -1,
        mix_any=int(topo.is_schedule(graph)),
        resend=int(proto.resend),
        in_indptr=in_indptr,
        edge_src=src,
        edge_dst=dst,
        out_indptr=out_indptr,
        out_edges=out_edges,
        active=active,
        compute=compute.base.engine_params(),
        agent_factor=agent_factor,
        delay=delays.base.engine_params(),
        edge_factor=edge_factor,
        drop=faults.drop,
        crash_time=crash_time,
        link_time=link_time,
        edge_on=edge_on,
        fault_time=fault_time,
        fault_kind=fault_kind,
        fault_target=fault_target,
        fault_awaits=fault_awaits,
        repair=-1.0 if faults.repair is None else float(faults.repair),
        crash_rate=float(faults.crash_rate),
        downtime=float(faults.downtime),
        targets=targets,
        seed=seed,
        certificate=2 if certificate == "exact" else int(track),
        samples=samples,
        record_events=int(record_events),
        max_events=default_max_events(n, E, iterations) if max_events is None else max_events,
        callback=updates.callback,
    )


def default_max_events(n: int, edges: int, iterations: int) -> int:
    """A budget no completing run comes near: 100 times a fault-free run's events, plus 10^6.

    A fault-free GALA iteration costs an agent one update, at most one mix, and one write and one
    arrival per out-edge; stragglers make the fast agents do more while the slow ones finish.
    """
    return min(100 * iterations * (2 * n + 2 * edges) + 10**6, 2**62)


def _violations(raw: dict, spec: EngineSpec, proto: Protocol, faults: Faults) -> list[str]:
    """Which of (A1)-(A4) the run broke, each as a sentence a user can act on."""
    found = []
    if raw["max_update_norm"] > spec.step * (1 + 1e-9):
        found.append(f"A1: an update of norm {raw['max_update_norm']:.4g} exceeds alpha*L = {spec.step:.4g}")
    found += _fault_violations(raw, faults)
    removed = spec.link_time <= raw["virtual_time"]
    if removed.any() and proto.code != ALLREDUCE:
        kept = nx.DiGraph()
        kept.add_nodes_from(range(spec.n))
        kept.add_edges_from(zip(spec.edge_src[~removed].tolist(), spec.edge_dst[~removed].tolist()))
        if not nx.is_strongly_connected(kept):
            cut = sorted(zip(spec.edge_src[removed].tolist(), spec.edge_dst[removed].tolist()))
            found.append(f"A3: removing link(s) {cut} leaves a graph that is not strongly connected")
    if proto.code == GALA and not proto.staleness_bounded:
        found.append("A4: sync_freq=inf, so staleness is unbounded")
    if raw["stopped"]:
        found.append(f"the run stopped before completing ({raw['stopped']}): {raw['diagnosis']}")
    return found


def _with_crash_rate(faults: Faults, crash_rate: Any) -> Faults:
    """``crash_rate=R`` is ``faults="...+crash-rate:R"`` (a keyword of its own, so sweeps can vary it)."""
    if isinstance(crash_rate, bool) or not isinstance(crash_rate, (int, float)):
        raise TypeError(f"crash_rate must be a finite number >= 0, got {crash_rate!r}")
    if not (math.isfinite(crash_rate) and crash_rate >= 0):
        raise ValueError(f"crash_rate must be a finite number >= 0, got {crash_rate!r}")
    if crash_rate == 0:
        return faults
    if faults.crash_rate > 0:
        raise ValueError(f"crash_rate={crash_rate!r} and faults={str(faults)!r} both set a crash rate; give one")
    return dataclasses.replace(faults, crash_rate=float(crash_rate))


def _fault_violations(raw: dict, faults: Faults) -> list[str]:
    """A3 (and identical initialisation) interrupted by crashes: one sentence per crash episode."""
    found = []
    for e in fault_log.episodes(raw.get("faults", np.zeros(0, dtype=LOG_DTYPE))):
        if e.rejoin is None and faults.repair is None:
            found.append(f"A3: agent {e.agent} crashed at t={e.crash:g} and no longer mixes (the network is no "
                         f"longer strongly connected)")
            continue
        how = [f"detected and bypassed at t={e.detect:g}"] if e.detect is not None else []
        how += [f"rejoined at t={e.rejoin:g}, a new start"] if e.rejoin is not None else ["never rejoined"]
        found.append(f"A3: agent {e.agent} crashed at t={e.crash:g} ({'; '.join(how)}): the assumptions were "
                     f"interrupted, so no bound is claimed across it")
    return found


def simulate(
    topology: Any = "ring",
    protocol: str | Protocol = "gala",
    *,
    agents: int | None = None,
    dim: int = 8,
    iterations: int = 1000,
    lr: float = 0.01,
    L: float = 1.0,
    updates: str | Callable | UpdateModel = "two-camp",
    compute: str | float | ComputeModel = "exponential:1",
    delays: str | float | DelayModel | None = 0.0,
    sync_freq: int | float | str | None = None,
    faults: str | Faults | None = None,
    crash_rate: float = 0.0,
    seed: int = 0,
    peers: int = 1,
    certificate: bool | str = "auto",
    trajectory_samples: int = 200,
    engine: str = "cython",
    record_events: bool = False,
    max_events: int | None = None,
) -> SimResult:
    """Simulate asynchronous gossip in virtual time and check the epsilon-ball bound.

    Parameters
    ----------
    topology : str, networkx graph or Schedule
        A name from :data:`galasim.topology.NAMES` (with ``agents`` and ``peers``), a graph whose
        edge ``j -> i`` means i receives from j (undirected graphs gossip both ways), or a
        time-varying :class:`galasim.topology.Schedule`.
    protocol : {"gala", "gala-resend", "sync-gossip", "allreduce", "push-sum"}
        ``gala`` is the paper's protocol (facebookresearch/gala); ``gala-resend`` is galasim's
        deadlock-free extension (see :mod:`galasim.gossip.protocol`).
    agents : int, optional
        Number of agents for a named topology (default 8).
    dim : int
        Dimension d of each agent's parameters.
    iterations : int
        Local updates every (live) agent completes; faster agents keep going meanwhile.
    lr, L : float
        Learning rate alpha and update bound L: every surrogate update has norm <= alpha L.
    updates : str or callable
        ``two-camp``, ``away-from-mean``, ``random``, ``quadratic``, or ``f(agent, k, x) -> delta``.
    compute, delays, faults : str, number or model object
        The model grammar of :mod:`galasim.sim.models`, e.g. ``compute="stragglers:0.25,4"``,
        ``delays=2.0`` (exponential with mean 2 compute units), ``faults="crash:3@500"``;
        crash-and-repair: ``faults="crash:3@500+repair:2+rejoin:3@900"`` (docs/simulation.md).
    crash_rate : float
        Random crashes per agent and time unit, the same as ``faults="...+crash-rate:R"`` (each
        crashed agent rejoins after the default downtime); a keyword of its own so that sweeps vary it.
    sync_freq : int, "inf" or None
        GALA's staleness bound (None: the protocol's default, 4; 0 always waits).
    seed : int
        Everything random derives from it: equal seeds give equal results.
    certificate : bool, "auto" or "exact"
        Track the data-dependent bound on max_i ||x_i - mean|| (docs/simulation.md). True: with
        Dobrushin pieces (a dense (n+E)^2 product; about 2x the run's time); "exact" adds a
        window of up to 16,384 exact update columns, much tighter (within 10x of the empirical
        distance on the default study's 16-agent cells) and about 15-40x slower; "auto" is
        "exact" when n+E <= 32, True when n+E <= 512, else False.
    trajectory_samples : int
        About how many observations the returned trajectory keeps.
    engine : {"cython", "reference"}
        The compiled scheduler, or the pure-Python reference with identical semantics.
    record_events : bool
        Keep the log of every event (``SimResult.events``; memory grows with the run).
    max_events : int, optional
        Stop with a diagnosis after this many events (default: 100 times a fault-free run's).

    A run always ends: complete, or stopped with ``summary["stopped"]`` (``deadlock``: agents wait
    for one another forever; ``event-budget``) and ``summary["diagnosis"]`` saying who waited for
    whom, or who made no progress while the others advanced how far. Ctrl-C raises
    ``KeyboardInterrupt`` within a fraction of a second.

    Returns
    -------
    SimResult

    Examples
    --------
    >>> import galasim
    >>> r = galasim.simulate("ring", agents=8, iterations=200, delays=1.0, seed=1)
    >>> r.summary["bound_holds"], r.summary["empirical"] <= r.summary["certificate"]
    (True, True)
    >>> galasim.simulate("ring", "allreduce", agents=8, iterations=50).summary["empirical"]
    0.0
    """
    proto = make_protocol(protocol, sync_freq)
    check_sync_freq(sync_freq, proto.sync_freq)
    dim = integer("dim", dim, 1, INT32_MAX)
    iterations = integer("iterations", iterations, 1)
    lr = positive("lr", lr)
    L = positive("L", L)
    seed = integer("seed", seed, 0, SEED_MAX)
    peers = integer("peers", peers, 1)
    samples = integer("trajectory_samples", trajectory_samples, 2, INT32_MAX)
    choice("engine", engine, ENGINES)
    if max_events is not None:
        max_events = integer("max_events", max_events, 1)
    if certificate not in (True, False, "auto", "exact"):
        raise ValueError(f"certificate must be True, False, 'auto' or 'exact', got {certificate!r}")
    cost = dict(dim=dim, iterations=iterations, samples=samples, certificate=certificate)
    if isinstance(topology, str):  # before building it: every agent has an in-edge, so E >= n
        n = 8 if agents is None else integer("agents", agents, 2)
        check_run_cost(n, n, **cost)
    update_model = parse_updates(updates)
    compute_model = parse_compute(compute)
    delay_model = parse_delays(delays)
    fault_model = _with_crash_rate(parse_faults(faults), crash_rate)
    graph, topology_name = _resolve_topology(topology, agents, peers, seed)
    check_run_cost(_order(graph), len(_edge_layout(graph)[0]), **cost)
    if delay_model.per_edge:
        topo.check_delays(graph)
    spec = build_spec(
        graph, proto, dim=dim, iterations=iterations, lr=lr, L=L, updates=update_model,
        compute=compute_model, delays=delay_model, faults=fault_model, seed=seed,
        certificate=certificate, samples=samples, record_events=record_events, max_events=max_events,
    )
    if proto.code == ALLREDUCE:
        raw = allreduce.run(spec)
    elif engine == "cython":
        from galasim._scheduler import Engine

        raw = Engine(spec).run()
    else:
        from galasim.sim.reference import ReferenceEngine

        raw = ReferenceEngine(spec).run()

    config = {
        "topology": topology_name,
        "protocol": proto.name,
        "agents": spec.n,
        "dim": dim,
        "iterations": iterations,
        "lr": lr,
        "L": L,
        "updates": str(update_model),
        "compute": str(compute_model),
        "delays": str(delay_model),
        "sync_freq": proto.sync_freq,
        "faults": str(fault_model),
        "crash_rate": fault_model.crash_rate,
        "seed": seed,
        "peers": peers,
        "engine": engine,
    }
    summary = _summarise(raw, spec, proto, graph, fault_model)
    summary.update(_fault_summary(raw, spec, fault_model))
    trajectory = pd.DataFrame(raw["trajectory"], columns=list(TRAJECTORY_COLUMNS))
    state = raw["x"] / raw["w"][:, None]
    events = as_frame(raw["event_log"]) if record_events and "event_log" in raw else None
    edges = pd.DataFrame({"src": spec.edge_src, "dst": spec.edge_dst})
    return SimResult(config, summary, trajectory, state, diagnostics=raw, events=events, edges=edges)


def _fault_summary(raw: dict, spec: EngineSpec, faults: Faults) -> dict:
    """Crash-and-repair fields: what happened, and when the theorem's assumptions were interrupted."""
    log = raw.get("faults", np.zeros(0, dtype=LOG_DTYPE))
    found = fault_log.episodes(log)
    original = [(int(u), int(v)) for u, v, on in zip(spec.edge_src, spec.edge_dst, spec.edge_on) if on]
    text, down = fault_log.interrupted(found, float(raw["virtual_time"]))
    return {
        "crashes": len(found),
        "rejoins": sum(e.rejoin is not None for e in found),
        "faults_log": fault_log.describe(log, original, faults.repair is not None),
        "assumptions_interrupted": text,
        "interrupted_time": down,
    }


def _summarise(raw: dict, spec: EngineSpec, proto: Protocol, graph, faults: Faults) -> dict:
    from galasim.sim.bounds import epsilon_for_run

    violated = _violations(raw, spec, proto, faults)
    eps = epsilon_for_run(raw, spec, proto)
    certificate = raw["certificate"]
    empirical = raw["sup_distance"]
    assumptions_hold = not violated
    if proto.code == PUSH_SUM or not assumptions_hold:
        bound_holds = None  # nothing is claimed: outside the theorem, or an assumption failed
    else:
        # Two independent proven upper bounds: each must hold, nothing orders them.
        slack = 1e-9 * max(empirical, spec.step) + 1e-12
        proven = [b for b in (certificate, eps.epsilon) if not math.isnan(b)]
        bound_holds = bool(all(empirical <= b + slack for b in proven))
    live = ~raw["crashed"]
    iters = raw["iterations"][live] if live.any() else raw["iterations"]
    virtual_time = raw["virtual_time"]
    total_updates = int(raw["iterations"].sum())
    throughput = total_updates / virtual_time if virtual_time > 0 else math.nan
    baseline_time = allreduce.makespan(spec)
    allreduce_throughput = spec.n * spec.iterations / baseline_time if baseline_time > 0 else math.nan
    traj = raw["trajectory"]
    return {
        "empirical": float(empirical),
        "empirical_diameter": float(np.nanmax(traj[:, 2])) if len(traj) and np.isfinite(traj[:, 2]).any() else math.nan,
        "certificate": float(certificate),
        "epsilon": float(eps.epsilon),
        "log10_epsilon": float(eps.log10_epsilon),
        "epsilon_beta": float(eps.beta),
        "epsilon_tau": int(eps.tau),
        "epsilon_B": int(eps.B),
        "epsilon_T": int(eps.T),
        "actions": int(raw.get("actions", 0)),
        "bound_holds": bound_holds,
        "assumptions_hold": assumptions_hold,
        "violated": "; ".join(violated),
        "max_staleness": int(raw["max_staleness"]),
        "max_message_age": int(raw["max_message_age"]),
        "iterations_min": int(iters.min()),
        "iterations_mean": float(iters.mean()),
        "virtual_time": float(virtual_time),
        "throughput": float(throughput),
        "allreduce_throughput": float(allreduce_throughput),
        "throughput_vs_allreduce": float(throughput / allreduce_throughput),
        "events": int(raw["events"]),
        "events_per_second": float(raw["events"] / raw["wall_time"]) if raw["wall_time"] > 0 else math.nan,
        "wall_time": float(raw["wall_time"]),
        "messages_sent": int(raw["sent"]),
        "messages_skipped": int(raw["skipped"]),
        "messages_dropped": int(raw["dropped"]),
        "deadlock": bool(raw["deadlock"]),
        "completed": not raw["stopped"],
        "stopped": raw["stopped"],
        "diagnosis": raw["diagnosis"],
        "certificate_pieces": int(raw["pieces"]),
    }
