"""Which topology mixes fastest? SLEM and averaging time of four topologies, n = 8 .. 1024.

Run:  python examples/mixing_analysis.py [--out mixing_analysis.png]

GALA's directed ring (uniform weights 1/2) mixes in O(n²) iterations, the torus in O(n), the
hypercube and the exponential graph in O(log n) (on 2^k agents these two have the same SLEM,
(k-1)/(k+1)): the plot shows the spectral gap 1 - SLEM and the averaging time
ceil(log 0.01 / log SLEM) on log axes, and the table prints the numbers.
"""
import argparse

import matplotlib

matplotlib.use("Agg")  # write a file; no display needed
import matplotlib.pyplot as plt
import pandas as pd

from galasim import mixing, topology

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--out", default="mixing_analysis.png", help="where to save the plot (PNG)")
args = parser.parse_args()

SIZES = [2**k for k in range(3, 11)]  # 8 .. 1024: powers of two, so the torus and hypercube exist
# topology -> line style; the hypercube is drawn large and hollow, as the exponential graph lies on it
TOPOLOGIES = {
    "ring": dict(marker="o"),
    "torus": dict(marker="s"),
    "hypercube": dict(marker="o", markersize=10, markerfacecolor="none", linestyle="--"),
    "exponential": dict(marker="x", linestyle=":"),
}

rows = []
for name in TOPOLOGIES:
    for n in SIZES:
        W = mixing.mixing_matrix(topology.build(name, n))  # GALA's uniform pull weights
        rows.append({
            "topology": name,
            "agents": n,
            "slem": mixing.slem(W),
            "spectral_gap": mixing.spectral_gap(W),
            "averaging_time": mixing.averaging_time(W, eps=1e-2),
        })
table = pd.DataFrame(rows)
print(table.pivot(index="agents", columns="topology", values="averaging_time").to_string())

fig, (gap_ax, time_ax) = plt.subplots(1, 2, figsize=(11, 4.5))
for name, group in table.groupby("topology", sort=False):
    gap_ax.loglog(group["agents"], group["spectral_gap"], label=name, **TOPOLOGIES[name])
    time_ax.loglog(group["agents"], group["averaging_time"], label=name, **TOPOLOGIES[name])
gap_ax.set(xlabel="agents n", ylabel="spectral gap 1 - SLEM", title="Spectral gap (larger mixes faster)")
time_ax.set(xlabel="agents n", ylabel="iterations to shrink disagreement 100x",
            title="Averaging time ceil(log 0.01 / log SLEM)")
for ax in (gap_ax, time_ax):
    ax.set_xscale("log", base=2)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(title="uniform weights")
fig.tight_layout()
fig.savefig(args.out, dpi=120)
print(f"plot saved to {args.out}")
