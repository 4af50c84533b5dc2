"""Learning curves of ``galasim train`` runs: true scores and the network's consensus distance."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from galasim.atomic import atomic_savefig


def episodes(run_dir: str | Path) -> pd.DataFrame:
    """Every learner's finished games, in the order they ended (``total_frames``), with the running
    mean of the last 100 true returns over the whole network (column ``mean100``)."""
    logs = Path(run_dir) / "logs"
    files = sorted(logs.glob("learner*_episodes.csv"))
    if not files:
        raise FileNotFoundError(f"{str(run_dir)!r} has no logs/learner*_episodes.csv (not a galasim train run?)")
    table = pd.concat([pd.read_csv(f) for f in files]).sort_values("total_frames", kind="stable")
    table["mean100"] = table["return"].rolling(100, min_periods=1).mean()
    return table.reset_index(drop=True)


def plot_runs(runs: dict[str, str | Path], out: str | Path) -> Path:
    """Plot the mean true return of the last 100 episodes against frames for each run (left) and
    the consensus distance max_i ||theta_i - mean|| of the GALA runs (right); write a PNG atomically.

    Examples
    --------
    >>> plot_runs({"GALA 4x16": "runs/pong_gala", "A2C 1x64": "runs/pong_a2c"}, "pong.png")  # doctest: +SKIP
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (label, run) in enumerate(runs.items()):
        color = colors[k % len(colors)]  # one colour per run on both panels
        table = episodes(run)
        left.plot(table["total_frames"] / 1e6, table["mean100"], label=label, color=color)
        network = Path(run) / "logs" / "network.csv"
        if network.exists():
            net = pd.read_csv(network)
            net = net[net["distance"] > 0]  # before the first update every learner is at theta_0
            if len(net):
                right.plot(net["total_frames"] / 1e6, net["distance"], label=label, color=color)
    left.set(xlabel="frames (millions)", ylabel="true return, mean of the last 100 episodes")
    right.set(xlabel="frames (millions)", ylabel="consensus distance", yscale="log",
              title="max_i ||θ_i − θ̄|| (network monitor)")
    # One legend for both panels, below them: inside an axes it hides the ends of the curves.
    fig.legend(*left.get_legend_handles_labels(), loc="lower center", ncol=3, fontsize="small", frameon=False)
    fig.subplots_adjust(bottom=0.24, wspace=0.25)
    left.grid(alpha=0.3)
    right.grid(alpha=0.3)
    return atomic_savefig(fig, out)
