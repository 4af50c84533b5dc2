"""Figures and the summary table of a finished sweep.

Both figures put the mean message delay on the x axis and draw one line per combination of the other
parameters that vary (protocol, topology, agents, ...), with the mean over seeds and error bars of
one standard deviation.

* ``distance_vs_delay.png``: the measured consensus distance sup_k max_i ||x_i - x̄|| (solid, error
  bars) and the data-dependent certificate (dashed) on the left; the closed-form ε on the right, as
  log10 ε. ε gets a panel of its own because it is typically hundreds of orders of magnitude above
  the measured distance: on a shared axis it would flatten every other curve into the floor. It is
  plotted as computed (from simulate's exact exponent ``log10_epsilon``, as ε itself can overflow
  a float), not clipped, so its looseness stays visible; the summary table prints it too. The
  distance axis is logarithmic, switching to symlog when some distance is exactly 0 (all-reduce
  keeps the agents in exact consensus), so that 0 still shows, at the bottom.
* ``throughput_vs_delay.png``: throughput relative to synchronous all-reduce (1 = as fast as
  all-reduce; a dotted line marks it).

Delays that are model strings (``uniform:0.5,1.5``) have no single number to sort by: the axis is
then categorical, in grid order. Figures are drawn on a :class:`matplotlib.figure.Figure` (Agg,
no pyplot state) and written atomically.
"""
from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import NullLocator

from galasim.sweep.grid import COLUMNS, PARAMETERS
from galasim.atomic import atomic_savefig, atomic_write_text

DISTANCE_PLOT = "distance_vs_delay.png"
THROUGHPUT_PLOT = "throughput_vs_delay.png"
SUMMARY_FILE = "summary.csv"
# log10_epsilon is simulate's exact exponent of ε, which as a float overflows to inf on big graphs.
METRICS = ("empirical", "certificate", "epsilon", "log10_epsilon", "throughput_vs_allreduce")


def varying_parameters(results: pd.DataFrame) -> list[str]:
    """The parameter columns (seed excluded) that take more than one value in ``results``.

    Examples
    --------
    >>> varying_parameters(pd.DataFrame({"protocol": ["gala", "allreduce"], "agents": [8, 8]}))
    ['protocol']
    """
    columns = [COLUMNS[name] for name in PARAMETERS]
    return [c for c in columns if c in results and results[c].nunique(dropna=False) > 1]


def summarize(results: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds of each configuration of a sweep.

    Parameters
    ----------
    results : pandas.DataFrame
        Rows of :func:`~galasim.sweep.run_sweep` (error rows included: they are counted).

    Returns
    -------
    pandas.DataFrame
        One row per combination of the varying parameters (per protocol when only the seed
        varies): those parameters, ``cells``, ``errors``, ``<metric>_mean`` and ``<metric>_std``
        for each of :data:`METRICS` present, and ``bound_holds_fraction`` (over the cells where
        the bound is claimed).

    Examples
    --------
    >>> rows = pd.DataFrame({"protocol": ["gala"] * 2, "seed": [0, 1], "status": ["ok"] * 2,
    ...                      "cell_id": ["a", "b"], "empirical": [1.0, 3.0],
    ...                      "bound_holds": [True, False]})
    >>> table = summarize(rows)
    >>> table[["protocol", "cells", "empirical_mean", "bound_holds_fraction"]].values.tolist()
    [['gala', 2, 2.0, 0.5]]
    """
    keys = varying_parameters(results) or ["protocol"]
    metrics = [m for m in METRICS if m in results]
    ok = results["status"] == "ok"
    # Error rows count as cells and errors, but never enter a mean.
    frame = results[keys].assign(
        cell_id=results["cell_id"],
        error=~ok,
        **{m: pd.to_numeric(results[m], errors="coerce").where(ok) for m in metrics},
    )
    aggregations = {"cells": ("cell_id", "size"), "errors": ("error", "sum")}
    for metric in metrics:
        aggregations[f"{metric}_mean"] = (metric, "mean")
        aggregations[f"{metric}_std"] = (metric, "std")
    if "bound_holds" in results:
        holds = results["bound_holds"].map({True: 1.0, False: 0.0}).where(ok).astype(float)
        frame = frame.assign(bound_holds=holds)
        aggregations["bound_holds_fraction"] = ("bound_holds", "mean")
    if "completed" in results:  # runs stopped with a diagnosis (deadlock, event budget)
        completed = results["completed"].map({True: 1.0, False: 0.0}).where(ok).astype(float)
        frame = frame.assign(completed=completed)
        aggregations["completed_fraction"] = ("completed", "mean")
    grouped = frame.groupby(keys, dropna=False, sort=False)
    return grouped.agg(**aggregations).reset_index()


def format_summary(table: pd.DataFrame) -> str:
    """Render :func:`summarize`'s table for a terminal: ``mean ± std`` per metric.

    Examples
    --------
    >>> table = pd.DataFrame({"protocol": ["gala"], "cells": [3], "errors": [0],
    ...                       "empirical_mean": [0.0123], "empirical_std": [0.002]})
    >>> print(format_summary(table))
    protocol  cells  errors      empirical
        gala      3       0 0.0123 ± 0.002
    """
    keys = [c for c in table.columns if not c.endswith(("_mean", "_std", "_fraction"))]
    shown = table[keys].copy()
    for column in set(keys) & set(COLUMNS.values()):
        shown[column] = table[column].map(_value)
    # ε and its exponent say the same; the exponent is shown, as ε alone may print as inf.
    metrics = [m for m in METRICS if not (m == "epsilon" and "log10_epsilon_mean" in table)]
    for metric in metrics:
        if f"{metric}_mean" in table:
            pairs = zip(table[f"{metric}_mean"], table[f"{metric}_std"])
            shown[metric] = [_mean_std(mean, std) for mean, std in pairs]
    for name in ("completed", "bound_holds"):
        if f"{name}_fraction" in table:
            shown[name] = ["n/a" if np.isnan(f) else f"{100 * f:.0f}%" for f in table[f"{name}_fraction"]]
    return shown.to_string(index=False)


def _mean_std(mean: float, std: float) -> str:
    if np.isnan(mean):
        return "n/a"
    return f"{mean:.3g}" if np.isnan(std) else f"{mean:.3g} ± {std:.2g}"


def write_summary(table: pd.DataFrame, out_dir: str | Path) -> Path:
    """Write :func:`summarize`'s table to ``out_dir/summary.csv`` (atomically); return the path.

    Examples
    --------
    >>> import tempfile
    >>> write_summary(pd.DataFrame({"protocol": ["gala"], "cells": [3]}), tempfile.mkdtemp()).name
    'summary.csv'
    """
    path = Path(out_dir) / SUMMARY_FILE
    return atomic_write_text(path, table.to_csv(index=False))


def plot_sweep(results: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """Draw the distance and the throughput figures of a sweep into ``out_dir``.

    Parameters
    ----------
    results : pandas.DataFrame
        Rows of :func:`~galasim.sweep.run_sweep`; only rows with ``status == "ok"`` are drawn.
    out_dir : str or Path
        Existing directory that receives ``distance_vs_delay.png`` and ``throughput_vs_delay.png``.

    Returns
    -------
    list of Path
        The figures written (none when no cell succeeded; a figure is skipped when its metrics are
        missing from the summary).

    Examples
    --------
    >>> import tempfile
    >>> from galasim.sweep import Grid, run_sweep
    >>> out = tempfile.mkdtemp()
    >>> rows = run_sweep(Grid({"delays": [0, 2], "iterations": 50}, seeds=2), out, n_jobs=1,
    ...                  progress=False)
    >>> [path.name for path in plot_sweep(rows, out)]
    ['distance_vs_delay.png', 'throughput_vs_delay.png']
    """
    ok = results[results["status"] == "ok"]
    if ok.empty:
        return []
    if "log10_epsilon" not in ok and "epsilon" in ok:
        ok = ok.assign(log10_epsilon=np.log10(pd.to_numeric(ok["epsilon"], errors="coerce")))
    ok, axis = _with_delay_position(ok)
    series = list(_series(ok))
    seeds = ok["seed"].nunique()
    written = []
    if {"empirical", "certificate", "log10_epsilon"} <= set(ok.columns):
        figure = _distance_figure(series, axis, seeds, _fixed_parameters(ok, width=140))
        written.append(atomic_savefig(figure, Path(out_dir) / DISTANCE_PLOT, dpi=110))
    if "throughput_vs_allreduce" in ok.columns:
        figure = _throughput_figure(series, axis, seeds, _fixed_parameters(ok, width=100))
        written.append(atomic_savefig(figure, Path(out_dir) / THROUGHPUT_PLOT, dpi=110))
    return written


def _with_delay_position(ok: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Add the x position ``_x`` of every row and describe the delay axis."""
    numeric = pd.to_numeric(ok["delays"], errors="coerce")
    if numeric.notna().all():
        ticks = sorted(numeric.unique())
        positive = [t for t in ticks if t > 0]
        # Delays usually double from one value to the next: spread them unless the range is small.
        wide = len(positive) > 1 and positive[-1] / positive[0] >= 8
        axis = {
            "ticks": ticks,
            "labels": [f"{t:g}" for t in ticks],
            "log_from": positive[0] if wide else None,
            "title": "mean message delay (in mean compute times)",
        }
        return ok.assign(_x=numeric), axis
    labels = list(dict.fromkeys(ok["delays"].astype(str)))
    axis = {
        "ticks": list(range(len(labels))),
        "labels": labels,
        "log_from": None,
        "title": "delay model",
    }
    return ok.assign(_x=ok["delays"].astype(str).map(labels.index)), axis


def _series(ok: pd.DataFrame) -> Iterator[tuple[str, pd.DataFrame]]:
    """One (label, per-delay mean/std table) per combination of the varying non-delay parameters."""
    keys = [k for k in varying_parameters(ok) if k != "delays"]
    metrics = [m for m in METRICS if m in ok]
    groups = ok.groupby(keys, dropna=False, sort=False) if keys else [((), ok)]
    for key, rows in groups:
        values = rows[metrics].apply(pd.to_numeric, errors="coerce")
        yield _label(keys, key, rows), values.groupby(rows["_x"]).agg(["mean", "std"]).sort_index()


def _label(keys: list[str], key: tuple, rows: pd.DataFrame) -> str:
    if not keys:
        return f"{rows['protocol'].iloc[0]} · {rows['topology'].iloc[0]}"
    bare = ("protocol", "topology")  # their values name themselves
    return " · ".join(_value(v) if k in bare else f"{k}={_value(v)}" for k, v in zip(keys, key))


def _value(value: object) -> str:
    # None (a default) comes back from groupby as NaN: show it the way the grid spells it.
    return "None" if pd.isna(value) else str(value)


def _fixed_parameters(ok: pd.DataFrame, width: int) -> str:
    """The parameters every line shares, wrapped for a title: a figure should say what it shows."""
    varying = set(varying_parameters(ok)) | {"delays"}
    columns = [c for c in map(COLUMNS.get, PARAMETERS) if c in ok and c not in varying]
    return textwrap.fill(", ".join(f"{c}={ok[c].iloc[0]}" for c in columns), width=width)


def _distance_figure(series: list, axis: dict, seeds: int, fixed: str) -> Figure:
    figure = Figure(figsize=(11, 5.2), layout="constrained")
    left, right = figure.subplots(1, 2, width_ratios=(3, 1.3))
    for index, (label, stats) in enumerate(series):
        color = f"C{index % 10}"
        x = stats.index.to_numpy(dtype=float)
        empirical = stats["empirical"]
        left.errorbar(x, empirical["mean"], yerr=empirical["std"].fillna(0), color=color,
                      marker="o", capsize=3, label=label)
        left.plot(x, stats["certificate", "mean"], color=color, linestyle="--", marker="^",
                  markersize=4)
        right.plot(x, stats["log10_epsilon", "mean"], color=color, linestyle=":", marker="s",
                   markersize=4)
    means = [s[m, "mean"].to_numpy(float) for _, s in series for m in ("empirical", "certificate")]
    _distance_scale(left, np.concatenate(means))
    left.set_ylabel("consensus distance  sup$_k$ max$_i$ ‖x$_i$ − x̄‖")
    left.set_title(f"measured distance and certificate (mean ± std over {seeds} seeds)")
    styles = [
        Line2D([], [], color="0.3", marker="o", label="empirical (± std)"),
        Line2D([], [], color="0.3", linestyle="--", marker="^", markersize=4, label="certificate"),
        Line2D([], [], color="0.3", linestyle=":", marker="s", markersize=4,
               label="ε (closed form)"),
    ]
    configurations, labels = left.get_legend_handles_labels()
    left.legend(handles=configurations + styles, labels=labels + [h.get_label() for h in styles],
                loc="best", fontsize="small", framealpha=0.8)
    right.set_title("closed-form ε (own scale)")
    right.set_ylabel("log$_{10}$ ε")
    for ax in (left, right):
        _delay_axis(ax, axis)
    # The same delays as on the left (its long label would be clipped), then the values of ε that a
    # log axis cannot show.
    right.set_xlabel("\n".join(["delay", *_epsilon_notes(series)]))
    figure.suptitle("Consensus distance vs message delay", fontsize="large")
    figure.supxlabel(fixed, fontsize="small", color="0.3")  # the shared settings, as a caption
    return figure


def _epsilon_notes(series: list) -> list[str]:
    notes = []
    for label, stats in series:
        exponents = stats["log10_epsilon", "mean"].to_numpy(float)
        if (exponents == -np.inf).all():
            notes.append(f"{label}: ε = 0")
        elif (exponents == np.inf).any():
            notes.append(f"{label}: ε = ∞ (an assumption fails)")
    return notes


def _distance_scale(ax: Axes, distances: np.ndarray) -> None:
    positive = distances[np.isfinite(distances) & (distances > 0)]
    if positive.size == 0:
        return  # all distances 0: the linear default is the honest picture
    if (distances[np.isfinite(distances)] <= 0).any():
        ax.set_yscale("symlog", linthresh=positive.min(), linscale=0.5)
        ax.set_ylim(bottom=0)
    else:
        ax.set_yscale("log")


def _throughput_figure(series: list, axis: dict, seeds: int, fixed: str) -> Figure:
    figure = Figure(figsize=(8, 5), layout="constrained")
    ax = figure.subplots()
    for index, (label, stats) in enumerate(series):
        x = stats.index.to_numpy(dtype=float)
        throughput = stats["throughput_vs_allreduce"]
        ax.errorbar(x, throughput["mean"], yerr=throughput["std"].fillna(0), color=f"C{index % 10}",
                    marker="o", capsize=3, label=label)
    ax.axhline(1.0, color="0.4", linestyle=":", label="all-reduce")
    ax.set_ylabel("throughput / all-reduce throughput")
    ax.set_title(f"Throughput relative to all-reduce (mean ± std over {seeds} seeds)")
    figure.supxlabel(fixed, fontsize="small", color="0.3")  # the shared settings, as a caption
    ax.legend(fontsize="small")
    _delay_axis(ax, axis)
    return figure


def _delay_axis(ax: Axes, axis: dict) -> None:
    if axis["log_from"] is not None:
        ax.set_xscale("symlog", linthresh=axis["log_from"], linscale=0.5)
    ax.set_xticks(axis["ticks"], axis["labels"])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel(axis["title"])
    ax.grid(True, alpha=0.3)

