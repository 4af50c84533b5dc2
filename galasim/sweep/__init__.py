"""Parameter sweeps of :func:`galasim.simulate`: grids, parallel resumable runs, plots, summaries.

Examples
--------
>>> import tempfile
>>> from galasim.sweep import Grid, run_sweep
>>> results = run_sweep(Grid({"delays": [0, 2], "iterations": 50}, seeds=2), tempfile.mkdtemp(),
...                     n_jobs=1, progress=False)
>>> results[["delays", "seed", "status"]].values.tolist()
[[0.0, 0, 'ok'], [0.0, 1, 'ok'], [2.0, 0, 'ok'], [2.0, 1, 'ok']]
"""
from __future__ import annotations

import importlib
from typing import Any

# What `galasim sweep` runs with no parameters (a mapping for `Grid.from_mapping`): GALA on the
# paper's directed ring against synchronous all-reduce, as the mean message delay grows.
DEFAULT_GRID: dict[str, Any] = {
    "topology": ["ring"],
    "protocol": ["gala", "allreduce"],
    "agents": [16, 64],
    "iterations": [5000],
    "delays": [0, 0.5, 1, 2, 4, 8],
    "seeds": 5,
}

# Public name -> submodule. Loaded on first use, so that `galasim sweep --help` (which reads the
# parameter table in `grid`) does not import pandas, matplotlib and joblib.
_EXPORTS = {
    "PARAMETERS": "grid",
    "Cell": "grid",
    "Grid": "grid",
    "cell_id": "grid",
    "read_grid_file": "grid",
    "split_list": "grid",
    "format_summary": "plots",
    "plot_sweep": "plots",
    "summarize": "plots",
    "write_summary": "plots",
    "bench_sweep_scaling": "runner",
    "run_cell": "runner",
    "run_sweep": "runner",
    "RESULTS_FILE": "store",
    "ResultStore": "store",
    "read_results": "store",
}

__all__ = ["DEFAULT_GRID", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'galasim.sweep' has no attribute {name!r}")
    return getattr(importlib.import_module(f"galasim.sweep.{_EXPORTS[name]}"), name)
