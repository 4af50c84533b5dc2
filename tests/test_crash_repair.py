"""Crash-and-repair and rejoin: the repair rule, both engines, the summary, sweeps and bad input."""
from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import galasim
from galasim import topology
from galasim.gossip.repair import possible_edges, rejoin_source, repaired_edges
from galasim.sim.api import build_spec, simulate
from galasim.sim.models import parse_faults
from galasim.sim.reference import ReferenceEngine
from galasim.sweep import Grid, run_sweep
from proofs_checks.c7_engines import disagreements


def ring_edges(n: int) -> list[tuple[int, int]]:
    return [(i, (i + 1) % n) for i in range(n)]


# ------------------------------------------------------------------------------- the repair rule


@pytest.mark.parametrize("n", [3, 4, 8, 17])
def test_on_a_directed_ring_the_predecessor_sends_to_the_successor(n):
    for c in range(n):
        expected = sorted(set(ring_edges(n)) - {((c - 1) % n, c), (c, (c + 1) % n)}
                          | {((c - 1) % n, (c + 1) % n)})
        assert repaired_edges(ring_edges(n), {c}) == expected


def test_the_rule_is_order_free_and_a_rejoin_undoes_exactly_its_bypasses():
    ring = ring_edges(6)
    assert repaired_edges(ring, {1, 2}) == sorted({(0, 3), (3, 4), (4, 5), (5, 0)})
    # 1 rejoins while 2 is still dead: 1 needs the bypass 1->3, 0->3 is no longer needed
    assert repaired_edges(ring, {2}) == sorted({(0, 1), (1, 3), (3, 4), (4, 5), (5, 0)})
    assert repaired_edges(ring, set()) == sorted(ring)
    assert set(repaired_edges(ring, {2})) <= set(possible_edges(ring, {1, 2}))


def test_rejoin_source_is_the_lowest_live_in_neighbour():
    assert rejoin_source([4, 2, 7], alive={4, 7}) == 4
    assert rejoin_source([4, 2], alive=set()) is None


@st.composite
def strongly_connected_graphs(draw):
    n = draw(st.integers(3, 10))
    extra = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=3 * n))
    order = draw(st.permutations(range(n)))
    # a Hamiltonian cycle in a random order keeps it strongly connected; the extra edges vary it
    edges = {(order[i], order[(i + 1) % n]) for i in range(n)} | {(u, v) for u, v in extra if u != v}
    return n, sorted(edges)


@settings(max_examples=150, deadline=None)
@given(strongly_connected_graphs(), st.data())
def test_survivors_stay_strongly_connected(graph, data):
    n, edges = graph
    dead = data.draw(st.sets(st.integers(0, n - 1), max_size=n - 2))
    repaired = nx.DiGraph(repaired_edges(edges, dead))
    repaired.add_nodes_from(set(range(n)) - dead)
    assert set(repaired.nodes) == set(range(n)) - dead
    assert nx.is_strongly_connected(repaired)
    assert set(repaired.edges) <= set(possible_edges(edges, dead))


# ----------------------------------------------------------------------------- engines and runs

AGREE = [
    dict(topology=topology.ring(8), faults="crash:3@20+repair:2", delays="1.0"),
    dict(topology=topology.ring(8), faults="crash:3@20+repair:2+rejoin:3@45", delays="0.5"),
    dict(topology=topology.ring(8), faults="crash:3@20+rejoin:3@45", delays="2.0", sync_freq="1"),
    dict(topology=topology.ring(8), faults="crash:3@20+crash:4@21+repair:0+rejoin:3@30", delays="1.0"),
    dict(topology=topology.build("ring-undirected", 7), faults="crash-rate:0.01,5+repair:1", delays="1.0",
         protocol="gala-resend"),
    dict(topology=topology.complete(5), faults="crash-rate:0.02,3+repair:3+drop:0.1", delays="pareto:1,1.5",
         protocol="gala-resend", sync_freq="0"),
    dict(topology=topology.ring(6), faults="crash-rate:0.01", delays="0", sync_freq="inf"),
    dict(topology=topology.ring(6), faults="crash:2@5+rejoin:2@6+repair:4", delays="1.0", sync_freq="0"),
]


@pytest.mark.parametrize("config", AGREE)
def test_both_engines_agree_on_crash_repair_and_rejoin(config):
    base = dict(protocol="gala", iterations=80, dim=3, lr=0.5, updates="two-camp", compute="exponential:1",
                sync_freq="3", seed=5, max_events=200_000, topology_label="t")
    found, summary = disagreements(base | config)
    assert found == []
    assert summary["crashes"] >= 1


def test_a_repaired_ring_completes_and_stays_close_where_a_permanent_crash_drifts():
    common = dict(agents=8, iterations=400, delays=1.0, seed=0)
    permanent = simulate("ring", faults="crash:3@50", **common).summary
    repaired = simulate("ring", faults="crash:3@50+repair:2", **common).summary
    assert repaired["completed"] and repaired["iterations_min"] == 400
    # Without repair agent 4 hears from nobody: its camp's steps accumulate unmixed.
    assert repaired["empirical"] < 0.5 * permanent["empirical"]
    # Only the repaired graph is strongly connected at the end: epsilon's B exists.
    assert repaired["epsilon_B"] > 0 and permanent["epsilon_B"] == 0
    assert repaired["bound_holds"] is None and "t=52" in repaired["violated"]


def test_the_timeout_matters_the_successor_waits_until_detection():
    r = simulate("ring", "sync-gossip", agents=6, iterations=200, faults="crash:2@30+repair:25",
                 compute="constant:1", record_events=True)
    ev = r.events
    repair_time = float(ev.loc[ev["kind"] == "repair", "time"].iloc[0])
    assert repair_time == 55.0
    # sync-gossip always waits: agent 3 finishes at most the update under way, then waits for agent 2
    waiting = ev[(ev["agent"] == 3) & (ev["kind"] == "update") & (ev["time"] > 30) & (ev["time"] < repair_time)]
    assert len(waiting) <= 1
    after = ev[(ev["agent"] == 3) & (ev["kind"] == "update") & (ev["time"] > repair_time)]
    assert len(after) > 100 and r.summary["completed"]


def test_the_event_log_and_the_summary_list_the_faults():
    r = simulate("ring", agents=5, iterations=150, faults="crash:1@10+repair:2+rejoin:1@40", record_events=True)
    kinds = r.events["kind"].astype(str).tolist()
    assert [k for k in kinds if k in ("crash", "repair", "rejoin")] == ["crash", "repair", "rejoin"]
    rejoin = r.events[r.events["kind"] == "rejoin"].iloc[0]
    assert r.edges.loc[int(rejoin["edge"]), "src"] == 0  # the predecessor's parameters
    s = r.summary
    assert s["crashes"] == 1 and s["rejoins"] == 1 and s["interrupted_time"] == pytest.approx(30.0)
    assert "bypassed: +0->2 -0->1 -1->2" in s["faults_log"]
    assert "rejoined with agent 0's parameters: +0->1 +1->2 -0->2" in s["faults_log"]
    assert "rejoined at t=40 (a new start)" in s["assumptions_interrupted"]
    quiet = simulate("ring", agents=5, iterations=50).summary
    assert quiet["crashes"] == 0 and quiet["faults_log"] == "" and quiet["assumptions_interrupted"] == ""


class Spy(ReferenceEngine):
    """Records the state right after a rejoin copied the parameters (before any new message)."""

    copies: list

    def _connect(self):
        if self.flog and self.flog[-1][1] == 2:
            _, _, agent, source = self.flog[-1]
            self.copies.append((agent, source, self.x.copy()))
        super()._connect()


def _run_spy(faults: str, graph) -> list:
    spec = build_spec(graph, galasim.gossip.protocol("gala"), dim=2, iterations=120, lr=0.1, L=1.0,
                      updates=galasim.sim.models.parse_updates("random"),
                      compute=galasim.sim.models.parse_compute("exponential:1"),
                      delays=galasim.sim.models.parse_delays(1.0), faults=parse_faults(faults), seed=3,
                      certificate=False, samples=10)
    engine = Spy(spec)
    engine.copies = []
    engine.run()
    return engine.copies


def test_rejoin_copies_the_lowest_live_in_neighbours_parameters():
    (agent, source, x), = _run_spy("crash:3@20+repair:2+rejoin:3@50", topology.ring(6))
    assert (agent, source) == (3, 2)
    np.testing.assert_array_equal(x[3], x[2])
    # complete graph, agent 0 down for good: agent 5 copies agent 1
    (agent, source, x), = _run_spy("crash:0@5+crash:5@20+repair:2+rejoin:5@50", topology.complete(6))
    assert (agent, source) == (5, 1)
    np.testing.assert_array_equal(x[5], x[1])


def test_random_crashes_stop_once_an_agent_has_finished_and_the_run_ends():
    s = simulate("ring", agents=8, iterations=300, faults="crash-rate:0.005,20+repair:2", seed=2).summary
    assert s["completed"] and s["crashes"] >= 1 and s["rejoins"] == s["crashes"]
    assert s["iterations_min"] >= 300


def test_a_sweep_over_crash_rates_runs(tmp_path):
    grid = Grid({"faults": ["none", "crash-rate:0.002+repair:2", "crash-rate:0.01+repair:2"], "agents": 6,
                 "iterations": 150}, seeds=[0])
    rows = run_sweep(grid, tmp_path, n_jobs=1, progress=False)
    assert len(rows) == 3 and (rows["status"] == "ok").all()
    crashes = rows.assign(faults=rows["faults"].fillna("none")).set_index("faults")["crashes"]
    assert crashes["none"] == 0 and crashes["crash-rate:0.01+repair:2"] >= crashes["crash-rate:0.002+repair:2"]


# ------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(faults="repair:-1"), "repair:-1.0 needs a finite detection timeout >= 0"),
        (dict(faults="repair:soon"), "cannot read fault 'repair:soon'"),
        (dict(faults="crash-rate:-0.1"), "crash-rate:-0.1 needs a finite rate >= 0"),
        (dict(faults="crash-rate:0.1,0"), "downtime must be > 0"),
        (dict(faults="repair:1+repair:2"), "repair may appear once"),
        (dict(faults="rejoin:2@10"), "rejoin:2@10 has no earlier crash of agent 2"),
        (dict(faults="crash:2@10+rejoin:2@5"), "rejoin:2@5 has no earlier crash of agent 2"),
        (dict(faults="crash:2@1+rejoin:9@10"), "rejoin:9@10 names agent 9, but agents are 0..7"),
        (dict(faults="crash:2@1+repair:1", protocol="push-sum"), "need a gala-family protocol, got push-sum"),
        (dict(faults="crash-rate:0.1", protocol="allreduce"), "need a gala-family protocol, got allreduce"),
        (dict(topology="one-peer-exponential", faults="crash:2@1+repair:1"), "repair needs a static graph"),
        (dict(agents=128, faults="crash-rate:0.001+repair:1"), "may need 16256 edges"),
    ],
)
def test_bad_fault_input_is_one_line_naming_the_value(kwargs, message):
    with pytest.raises(ValueError) as error:
        simulate(**({"topology": "ring", "iterations": 5} | kwargs))
    assert message in str(error.value) and "\n" not in str(error.value)


def test_crash_rate_keyword_is_the_fault_term_and_sweeps():
    by_keyword = simulate("ring", agents=6, iterations=150, crash_rate=0.01, faults="repair:2", seed=1).summary
    by_term = simulate("ring", agents=6, iterations=150, faults="crash-rate:0.01+repair:2", seed=1).summary
    assert by_keyword["crashes"] >= 1
    assert {k: v for k, v in by_keyword.items() if k not in ("wall_time", "events_per_second")} == \
        {k: v for k, v in by_term.items() if k not in ("wall_time", "events_per_second")}
    with pytest.raises(ValueError, match="both set a crash rate"):
        simulate("ring", iterations=5, crash_rate=0.1, faults="crash-rate:0.2")
    with pytest.raises(ValueError, match="crash_rate must be a finite number >= 0, got -1"):
        Grid({"crash_rate": [0, -1]}, seeds=[0])
