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


def scores(runs: dict[str, str | Path]) -> pd.DataFrame:
    """One row per run: its games, the frames when the last one ended, the mean true return of the
    last 100 games (``mean_last_100``, as ``summary.json`` reports it) and the best mean of 100
    consecutive games with the frames where it was reached (NaN before 100 games; a run that has
    finished no game yet has only its label and 0 games).

    Examples
    --------
    >>> scores({"A2C 1x8": "docs/runs/pong_a2c1x8"})  # doctest: +SKIP
           run  games  last_game_frames  mean_last_100  best_mean_100  best_at_frames
    0  A2C 1x8   1569           9986240          16.12          17.13         9013920
    """
    rows = []
    for label, run in runs.items():
        table = episodes(run)
        window = table["return"].rolling(100).mean()  # full windows only: a few lucky games are no best
        best = window.idxmax() if window.notna().any() else None
        rows.append({"run": label, "games": len(table),
                     "last_game_frames": int(table["total_frames"].iloc[-1]) if len(table) else None,
                     "mean_last_100": float(table["mean100"].iloc[-1]) if len(table) else float("nan"),
                     "best_mean_100": float(window[best]) if best is not None else float("nan"),
                     "best_at_frames": int(table["total_frames"][best]) if best is not None else None})
    return pd.DataFrame(rows).astype({"last_game_frames": "Int64", "best_at_frames": "Int64"})  # may be missing


def plot_runs(runs: dict[str, str | Path], out: str | Path) -> Path:
    """Plot the mean true return of the last 100 episodes against frames for each run (left) and
    the consensus distance max_i ||theta_i - mean|| of the GALA runs (right, when there are any);
    write a PNG atomically.

    Examples
    --------
    >>> plot_runs({"GALA 4x16": "runs/pong_gala", "A2C 1x64": "runs/pong_a2c"}, "pong.png")  # doctest: +SKIP
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = {label: (episodes(run), _distances(run)) for label, run in runs.items()}
    gossip = any(len(net) for _, net in curves.values())  # A2C alone has no spread to show
    fig, axes = plt.subplots(1, 2 if gossip else 1, figsize=(11, 4.5) if gossip else (6, 4.5), squeeze=False)
    left = axes[0, 0]
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (label, (table, net)) in enumerate(curves.items()):
        color = colors[k % len(colors)]  # one colour per run on both panels
        left.plot(table["total_frames"] / 1e6, table["mean100"], label=label, color=color)
        if len(net):
            axes[0, 1].plot(net["total_frames"] / 1e6, net["distance"], label=label, color=color)
    left.set(xlabel="frames (millions)", ylabel="true return, mean of the last 100 episodes")
    if gossip:
        axes[0, 1].set(xlabel="frames (millions)", ylabel="consensus distance", yscale="log",
                       title="max_i ||θ_i − θ̄|| (network monitor)")
    # One legend for both panels, below them: inside an axes it hides the ends of the curves.
    fig.legend(*left.get_legend_handles_labels(), loc="lower center", ncol=3 if gossip else 2,
               fontsize="small", frameon=False)
    fig.subplots_adjust(bottom=0.24, wspace=0.25)
    for ax in axes[0]:
        ax.grid(alpha=0.3)
    return atomic_savefig(fig, out)


def _distances(run: str | Path) -> pd.DataFrame:
    """The rows of a run's ``network.csv`` that show a spread (before the first update every learner
    is at theta_0; an A2C run has none)."""
    network = Path(run) / "logs" / "network.csv"
    net = pd.read_csv(network) if network.exists() else pd.DataFrame({"total_frames": [], "distance": []})
    return net[net["distance"] > 0]
