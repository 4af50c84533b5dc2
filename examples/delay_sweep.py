"""A delay sweep from Python: GALA vs all-reduce on a ring, then the results table with pandas.

Run:  python examples/delay_sweep.py [OUT_DIR]      (default results/delay_sweep)

Running it again finds every cell in OUT_DIR/results.parquet and computes nothing.
"""
import sys

import pandas as pd

from galasim.sweep import Grid, plot_sweep, run_sweep

out_dir = sys.argv[1] if len(sys.argv) > 1 else "results/delay_sweep"

grid = Grid(
    {
        "protocol": ["gala", "allreduce"],
        "agents": [8],
        "iterations": [200],
        "delays": [0, 1, 4],  # mean message delay, in mean compute times
    },
    seeds=3,
)
rows = run_sweep(grid, out_dir, n_jobs=-1)  # all cores; returns this grid's rows
print("figures:", *plot_sweep(rows, out_dir))

# The results file is a plain table: one row per cell, parameters and summary side by side.
results = pd.read_parquet(f"{out_dir}/results.parquet")
ok = results[results["status"] == "ok"]
metrics = ["empirical", "certificate", "throughput_vs_allreduce"]
table = ok.groupby(["protocol", "delays"])[metrics].mean()
print(table.to_string(float_format="{:.4g}".format))
