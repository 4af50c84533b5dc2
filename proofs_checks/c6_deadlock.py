"""C6: deadlock. How often the paper's protocol deadlocks, and that galasim's extension never does.

The paper's code (facebookresearch/gala, ``gpu_gossip_buffer.py``) skips a write while any out-peer
has not read the previous message, and after ``sync_freq`` iterations without mixing blocks until
every in-peer's message is there. A blocked agent never writes, so on graphs where agents have
several peers, agents can wait for one another forever. galasim's simulator detects this
(``galasim/sim/liveness.py``) and stops the run with the cycle of waiting agents.

The check runs both ``gala`` (the paper's protocol) and ``gala-resend`` (galasim's extension:
per-edge writes, owed writes served while blocked) on static topologies (directed ring with 1 and
2 peers, undirected ring, exponential graph, torus, random 3-regular, Erdős–Rényi), ``sync_freq``
in {0, 1, 2, 4, 8, inf}, exponential delays of mean {0, 1, 4}, several seeds, and on random
time-varying schedules. Asserted:

* every run ends, complete or stopped with a diagnosis;
* ``gala-resend`` completes every run on a static graph (the proof is in docs/simulation.md:
  along a chain of waiting agents the last actions strictly increase, so no cycle can form);
* ``gala`` never deadlocks on the 1-peer directed ring, nor with ``sync_freq=inf`` (a receiver
  waits only for a message that is unread or in flight, or for a writer that still runs);
* ``gala`` does deadlock on some multi-peer runs with a finite ``sync_freq`` (the finding; also
  shows that the detector fires).

Reported, not asserted: the deadlock rate per topology and ``sync_freq``, and on schedules (where
both variants can deadlock: these combinations are unsupported and reported as such).

Run ``python -m proofs_checks.c6_deadlock [--quick] [--seed S] [--out DIR]``.
"""
from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pandas as pd

from galasim import topology as topo
from galasim.sim import simulate
from proofs_checks.common import CheckResult, Plot, check_main, parallel_map, timed

NAME = "C6"
CLAIM = (
    "Every run ends; galasim's gala-resend never deadlocks on a static graph; the paper's gala never "
    "deadlocks on the 1-peer ring or with sync_freq=inf, but does on multi-peer graphs (rates reported)."
)

TOPOLOGIES = ("ring", "ring-2-peers", "ring-undirected", "exponential", "torus", "random-regular",
              "erdos-renyi")
SYNC_FREQS = (0, 1, 2, 4, 8, math.inf)
DELAYS = (0.0, 1.0, 4.0)
PROTOCOLS = ("gala", "gala-resend")


def _graph(name: str, n: int, seed: int):
    if name == "ring-2-peers":
        return topo.build("ring", n, peers=2)
    if name == "random-regular":
        return topo.random_regular(n, 3 if n % 2 == 0 else 4, seed=seed)
    if name == "erdos-renyi":  # G(n, 0.3) plus a ring, so that it is strongly connected
        return topo.from_networkx(nx.compose(nx.gnp_random_graph(n, 0.3, seed=seed, directed=True), topo.ring(n)))
    return topo.build(name, n)


def random_schedule(rng: np.random.Generator, n: int):
    """A random time-varying schedule: 2-4 graphs of 1-2 random out-peers each, B-strongly connected."""
    while True:
        graphs = []
        for _ in range(int(rng.integers(2, 5))):
            g = nx.DiGraph()
            g.add_nodes_from(range(n))
            for i in range(n):
                for j in rng.choice(n - 1, size=int(rng.integers(1, 3)), replace=False):
                    g.add_edge(i, int(j) if j < i else int(j) + 1)
            graphs.append(g)
        try:
            return topo.Schedule(graphs)
        except ValueError:  # the union is not strongly connected: draw again
            continue


def configs(quick: bool, seed: int) -> list[dict]:
    agents = (8,) if quick else (8, 16)
    seeds = range(seed, seed + (2 if quick else 6))
    static = [
        {"kind": "static", "topology": t, "agents": n, "sync_freq": f, "delays": d, "seed": s}
        for t in TOPOLOGIES for n in agents for f in SYNC_FREQS for d in DELAYS for s in seeds
    ]
    rng = np.random.default_rng([seed, 6])
    schedules = [
        {"kind": "schedule", "topology": "random-schedule", "agents": int(rng.integers(4, 11)),
         "sync_freq": float(rng.choice([0, 1, 2, 4])), "delays": float(rng.choice(DELAYS)),
         "seed": int(rng.integers(0, 2**31 - 1))}
        for _ in range(40 if quick else 500)
    ]
    return static + schedules


def run_one(config: dict) -> list[dict]:
    if config["kind"] == "schedule":
        graph = random_schedule(np.random.default_rng(config["seed"]), config["agents"])
    else:
        graph = _graph(config["topology"], config["agents"], config["seed"])
    rows = []
    for protocol in PROTOCOLS:
        s = simulate(graph, protocol, iterations=200, sync_freq=config["sync_freq"], delays=config["delays"],
                     seed=config["seed"], certificate=False, trajectory_samples=2).summary
        rows.append({**config, "protocol": protocol, "completed": s["completed"], "stopped": s["stopped"],
                     "diagnosis": s["diagnosis"], "iterations_min": s["iterations_min"]})
    return rows


def judge(details: pd.DataFrame) -> pd.Series:
    """Per run: the asserted parts of the claim."""
    ended = details["completed"] | (details["diagnosis"] != "")
    static = details["kind"] == "static"
    resend_ok = ~(static & (details["protocol"] == "gala-resend")) | details["completed"]
    paper_safe = static & (details["protocol"] == "gala") & (
        (details["topology"] == "ring") | details["sync_freq"].apply(math.isinf))
    paper_ok = ~paper_safe | details["completed"]
    return (ended & resend_ok & paper_ok).astype(bool)


def evaluate(details: pd.DataFrame) -> tuple[bool, list[str]]:
    failures = [
        f"{row['protocol']} on {row['topology']} n={row['agents']} sync_freq={row['sync_freq']} "
        f"delays={row['delays']} seed={row['seed']}: "
        + (f"stopped ({row['stopped']}): {row['diagnosis']}" if row["stopped"] else "did not end with a diagnosis")
        for _, row in details[~judge(details)].iterrows()
    ]
    multi = details[(details["kind"] == "static") & (details["protocol"] == "gala")
                    & (details["topology"] != "ring") & ~details["sync_freq"].apply(math.isinf)]
    if not (multi["stopped"] == "deadlock").any():
        failures.append("the paper's protocol never deadlocked on a multi-peer graph: the detector is not firing")
    return not failures, failures


def summarise(details: pd.DataFrame) -> pd.DataFrame:
    details = details.assign(ok=judge(details))
    rows = []
    for (kind, topology, sync_freq), group in details.groupby(["kind", "topology", "sync_freq"], sort=False):
        paper = group[group["protocol"] == "gala"]
        resend = group[group["protocol"] == "gala-resend"]
        rows.append({
            "kind": kind, "topology": topology, "sync_freq": sync_freq, "runs": len(paper),
            "gala deadlock %": 100.0 * float((paper["stopped"] == "deadlock").mean()),
            "gala other stop %": 100.0 * float(((paper["stopped"] != "") & (paper["stopped"] != "deadlock")).mean()),
            "gala-resend completed %": 100.0 * float(resend["completed"].mean()),
            "ok": bool(group["ok"].all()),
        })
    return pd.DataFrame(rows)


def rate_plot(table: pd.DataFrame) -> Plot:
    def build():
        import matplotlib.pyplot as plt

        static = table[table["kind"] == "static"]
        grid = static.pivot(index="topology", columns="sync_freq", values="gala deadlock %").reindex(TOPOLOGIES)
        fig, ax = plt.subplots(figsize=(7.5, 4.2))
        image = ax.imshow(grid.to_numpy(dtype=float), cmap="Reds", vmin=0, vmax=100, aspect="auto")
        ax.set_xticks(range(len(grid.columns)), [("inf" if math.isinf(f) else f"{f:g}") for f in grid.columns])
        ax.set_yticks(range(len(grid.index)), grid.index)
        for (r, c), value in np.ndenumerate(grid.to_numpy(dtype=float)):
            ax.text(c, r, f"{value:.0f}", ha="center", va="center", fontsize=8)
        ax.set_xlabel("sync_freq")
        ax.set_title("C6: % of runs in which the paper's GALA protocol deadlocks\n"
                     "(galasim's gala-resend: 0% everywhere on static graphs)", fontsize=10)
        fig.colorbar(image, ax=ax, label="% deadlocked")
        fig.tight_layout()
        return fig

    return Plot("c6_deadlock_rate.png", build,
                "Deadlock rate of the paper's protocol by topology and sync_freq (200 updates per agent).")


@timed
def run(quick: bool = False, seed: int = 0) -> CheckResult:
    jobs = [(c,) for c in configs(quick, seed)]
    details = pd.DataFrame([row for rows in parallel_map(run_one, jobs, parallel=not quick) for row in rows])
    passed, failures = evaluate(details)
    table = summarise(details)
    static = details[details["kind"] == "static"]
    notes = [
        f"{len(details)} runs: {len(static)} on static graphs, {len(details) - len(static)} on random "
        "schedules (half each protocol), 200 updates per agent.",
        "Asserted: every run ends; gala-resend completes every static run; gala completes every run on "
        "the 1-peer ring and every run with sync_freq=inf; gala deadlocks somewhere on multi-peer graphs.",
        "Schedules: rates reported only; both variants can deadlock there (unsupported, detected).",
    ]
    return CheckResult(NAME, CLAIM, passed, table, [rate_plot(table)], notes, details, failures)


def main(argv: list[str] | None = None) -> int:
    return check_main(run, NAME, CLAIM, argv)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
