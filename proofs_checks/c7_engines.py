"""C7: the compiled engine and the reference engine agree, number for number and event for event.

Every verdict galasim prints comes from the Cython scheduler (``ext/_scheduler.pyx``); the pure-
Python reference (``galasim/sim/reference.py``) implements the same semantics statement for
statement, without C, heaps of structs or branch-and-bound. The check draws random configurations
— every protocol (gala, gala-resend, sync-gossip, push-sum), directed and undirected rings,
complete graphs, random graphs and a time-varying schedule, n from 2 to 11 (mostly not a power
of two), steps alpha L up to 50 (up to 1 for the quadratic model, whose gradient steps diverge
chaotically beyond 2), every update model, heavy-tailed delays, stragglers, drops,
crashes, link removals, crash-and-repair, rejoins and random crashes — and runs each in both engines with the event log on. Asserted per
configuration: equal summaries (integers exactly, floats to 1e-12 relative), equal final states
(1e-12), and the same event log (kinds, agents, edges exactly; times to 1e-12).

Run ``python -m proofs_checks.c7_engines [--quick] [--seed S] [--out DIR]`` (2,000 configurations;
``--quick``: 40).
"""
from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pandas as pd

from galasim import topology as topo
from galasim.sim import simulate
from proofs_checks.common import CheckResult, Plot, check_main, parallel_map, timed

NAME = "C7"
CLAIM = (
    "The Cython engine and the pure-Python reference engine agree on every summary number, the final "
    "state and every event, on random configurations of every protocol, topology kind and fault."
)

EXACT = ("events", "messages_sent", "messages_skipped", "messages_dropped", "iterations_min", "stopped",
         "diagnosis", "actions", "epsilon_tau", "epsilon_B", "epsilon_T", "bound_holds", "max_staleness",
         "max_message_age", "certificate_pieces", "completed")
CLOSE = ("empirical", "empirical_diameter", "certificate", "virtual_time", "log10_epsilon")
TOLERANCE = 1e-12


# Crash-and-repair (repair:D), rejoins and random crashes (crash-rate:R,DOWN), alone and with drops.
DYNAMIC_FAULTS = ["crash:1@20+repair:2", "crash:1@20+repair:0+rejoin:1@40", "crash:1@20+rejoin:1@30",
                  "crash:0@10+crash:1@12+repair:5+rejoin:0@30", "crash-rate:0.01,5+repair:1",
                  "crash-rate:0.02,3+drop:0.1", "crash-rate:0.02,inf+repair:3+drop:0.1"]


def random_config(rng: np.random.Generator) -> dict:
    """One random configuration of ``simulate`` (small enough for the reference engine)."""
    n = int(rng.integers(2, 12))
    kind = str(rng.choice(["ring", "ring-undirected", "complete", "gnp", "schedule"]))
    if kind == "gnp":
        graph_seed = int(rng.integers(0, 10**6))
        gnp = nx.gnp_random_graph(n, float(rng.uniform(0.2, 0.9)), seed=graph_seed, directed=True)
        graph, label = nx.compose(gnp, topo.ring(n)), f"gnp+ring(seed={graph_seed})"
    elif kind == "schedule":
        graph, label = topo.one_peer_exponential(n), "one-peer-exponential"
    else:
        graph, label = topo.build(kind, n), kind
    protocol = str(rng.choice(["gala", "gala-resend", "sync-gossip", "push-sum"]))
    updates = str(rng.choice(["two-camp", "away-from-mean", "random", "quadratic"]))
    # Gradient steps on 1/2||x - b||^2 with lr > 2 diverge (x <- (1 - lr) x + lr b): rounding
    # differences of one ulp grow 49-fold per update at lr = 50, so two correct implementations
    # with different summation orders cannot agree. Large steps are drawn for the other models.
    lrs = [0.01, 1.0] if updates == "quadratic" else [0.01, 1.0, 50.0]
    # every topology drawn here has the edge 0 -> 1. Crash-and-repair and rejoin need a static
    # graph and a protocol of the gala family (galasim.sim.api refuses the others).
    faults = ["none", "drop:0.1", "drop:0.3", "crash:1@20", "link:0->1@15"]
    if kind != "schedule" and protocol != "push-sum":
        faults += DYNAMIC_FAULTS
    faults = rng.choice(faults)
    return dict(
        topology=graph, topology_label=label, protocol=protocol,
        faults=None if faults == "none" else str(faults),
        iterations=int(rng.integers(1, 121)),
        dim=int(rng.integers(1, 5)),
        lr=float(rng.choice(lrs)),
        delays=rng.choice(["0", "0.5", "2.0", "constant:1", "pareto:1,1.5", "uniform:0,3"]).item(),
        compute=str(rng.choice(["exponential:1", "constant:1", "stragglers:0.3,5"])),
        updates=updates,
        sync_freq=0 if protocol == "sync-gossip" else rng.choice(["0", "1", "3", "inf"]).item(),
        seed=int(rng.integers(0, 10**6)),
        max_events=200_000,
    )


def _close(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b)) or abs(a - b) <= TOLERANCE * max(1.0, abs(b))


def disagreements(config: dict) -> tuple[list[str], dict]:
    """What differs between the two engines on ``config`` (empty when they agree), and the summary."""
    kwargs = {k: v for k, v in config.items() if k != "topology_label"}
    fast = simulate(**kwargs, record_events=True)
    ref = simulate(**kwargs, record_events=True, engine="reference")
    found = [f"{f}: {fast.summary[f]!r} != {ref.summary[f]!r}" for f in EXACT if fast.summary[f] != ref.summary[f]]
    found += [f"{f}: {fast.summary[f]!r} vs {ref.summary[f]!r}" for f in CLOSE
              if not _close(fast.summary[f], ref.summary[f])]
    scale = max(1.0, float(np.abs(ref.state).max()))
    if fast.state.shape != ref.state.shape or np.abs(fast.state - ref.state).max() > TOLERANCE * scale:
        found.append("final states differ")
    if not fast.events[["kind", "agent", "edge"]].equals(ref.events[["kind", "agent", "edge"]]):
        found.append(f"event logs differ ({len(fast.events)} vs {len(ref.events)} events)")
    elif not np.allclose(fast.events["time"], ref.events["time"], rtol=TOLERANCE, atol=0):
        found.append("event times differ")
    return found, fast.summary


def run_one(config: dict) -> dict:
    found, summary = disagreements(config)
    return {
        "protocol": config["protocol"], "topology": config["topology_label"],
        "agents": _agents(config["topology"]), "faults": config["faults"] or "none",
        "lr": config["lr"], "iterations": config["iterations"], "seed": config["seed"],
        "events": summary["events"], "completed": summary["completed"], "stopped": summary["stopped"],
        "disagreements": "; ".join(found),
    }


def _agents(graph) -> int:
    return graph.n if topo.is_schedule(graph) else graph.number_of_nodes()


def summarise(details: pd.DataFrame) -> pd.DataFrame:
    table = details.assign(agree=details["disagreements"] == "").groupby("protocol").agg(
        configurations=("seed", "count"), events=("events", "sum"), stopped=("completed", lambda c: int((~c).sum())),
        disagreements=("agree", lambda a: int((~a).sum())))
    return table.reset_index().assign(ok=lambda t: t["disagreements"] == 0)


def events_plot(details: pd.DataFrame) -> Plot:
    def build():
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6.4, 4.0))
        for protocol, group in details.groupby("protocol"):
            ax.hist(np.log10(group["events"].clip(lower=1)), bins=30, histtype="step", label=protocol)
        ax.set_xlabel("log10 events per configuration")
        ax.set_ylabel("configurations")
        ax.set_title(f"C7: {len(details)} random configurations, "
                     f"{int((details['disagreements'] != '').sum())} disagreements between the engines", fontsize=10)
        ax.legend(fontsize=8)
        fig.tight_layout()
        return fig

    return Plot("c7_engine_agreement.png", build, "Size of the compared runs, by protocol.")


@timed
def run(quick: bool = False, seed: int = 0) -> CheckResult:
    rng = np.random.default_rng([seed, 7])
    jobs = [(random_config(rng),) for _ in range(40 if quick else 2000)]
    details = pd.DataFrame(parallel_map(run_one, jobs, parallel=not quick))
    bad = details[details["disagreements"] != ""]
    failures = [f"{row['protocol']} on {row['topology']} (seed={row['seed']}, faults={row['faults']}, "
                f"lr={row['lr']}): {row['disagreements']}" for _, row in bad.iterrows()]
    notes = [f"{len(details)} random configurations, {int(details['events'].sum())} events in all; "
             f"{int((~details['completed']).sum())} of them stopped with a diagnosis (compared too)."]
    return CheckResult(NAME, CLAIM, not failures, summarise(details), [events_plot(details)], notes, details,
                       failures)


def main(argv: list[str] | None = None) -> int:
    return check_main(run, NAME, CLAIM, argv)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
