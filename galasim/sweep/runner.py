"""Run the cells of a grid in parallel, storing each as it finishes, resuming where a run stopped.

Two backends: joblib's loky process pool on this machine (the default) and a Dask cluster. Each
result is stored by the parent as it arrives (:class:`~galasim.sweep.store.ResultStore`), so an
interrupted sweep keeps every cell it finished and the next run skips them.
"""
from __future__ import annotations

import contextlib
import datetime
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed, effective_n_jobs, parallel_config
from tqdm import tqdm

from galasim._interrupt import sigterm_as_interrupt
from galasim._validation import choice, workers
from galasim.sweep.grid import COLUMNS, Cell, Grid
from galasim.sweep.store import KEY_COLUMNS, RESULTS_FILE, ResultStore

BACKENDS = ("loky", "dask")
# How often a worker checks that the sweep process still exists.
PARENT_POLL_S = 1.0
CellFunction = Callable[[Mapping[str, Any]], Mapping[str, Any]]


def run_cell(config: Mapping[str, Any]) -> dict[str, Any]:
    """Run one simulation and return its summary: the default cell function.

    Parameters
    ----------
    config : Mapping
        Keyword arguments of :func:`galasim.simulate`, seed included.

    Returns
    -------
    dict
        ``SimResult.summary``: scalars keyed by name.

    Examples
    --------
    >>> summary = run_cell({"agents": 4, "iterations": 20, "seed": 0})
    >>> summary["empirical"] >= 0
    True
    """
    from galasim.sim import simulate  # lazy: a worker imports the simulator once, `--help` never

    return dict(simulate(**config).summary)


def run_sweep(
    grid: Grid,
    out_dir: str | Path,
    *,
    backend: str = "loky",
    address: str | None = None,
    n_jobs: int = -1,
    retry_errors: bool = False,
    progress: bool = True,
    cell_fn: CellFunction | None = None,
) -> pd.DataFrame:
    """Run the cells of ``grid`` not yet in ``out_dir/results.parquet``; return all the grid's rows.

    A cell that raises becomes an error row (``status == "error"``, the exception in ``error``) and
    the sweep goes on. On ``KeyboardInterrupt`` or ``SIGTERM`` the finished cells are saved, a line
    says how many, and ``KeyboardInterrupt`` propagates; running the same sweep again resumes.

    Parameters
    ----------
    grid : Grid
        The cells to run.
    out_dir : str or Path
        Directory of the results file (created if needed). Rows of other grids there are kept.
    backend : {"loky", "dask"}
        ``loky``: joblib processes on this machine. ``dask``: the Dask cluster at ``address``.
    address : str, optional
        Dask scheduler address such as ``tcp://10.0.0.5:8786``; required with ``backend="dask"``.
    n_jobs : int
        loky workers (``-1`` = all cores, ``1`` = in this process). The Dask cluster sizes itself.
    retry_errors : bool
        Run the cells stored as errors again (their rows are replaced); by default they are skipped.
    progress : bool
        Show a progress bar with ETA and a note on resumed cells, on stderr. (The note saying what
        an interrupted sweep saved is always shown.)
    cell_fn : callable, optional
        ``config -> summary`` mapping; default :func:`run_cell`. Workers receive it pickled
        (cloudpickle): a function of an importable module goes by reference, a closure by value.

    Returns
    -------
    pandas.DataFrame
        One row per cell of the grid, in grid order: ``cell_id``, ``status``, ``error``,
        ``computed_at`` (UTC, when the cell finished), the parameters (``certificate`` as
        ``certificate_mode``), ``seed``, then the summary.

    Raises
    ------
    ValueError
        Unknown backend, Dask without an address or an unreachable scheduler, an unreadable
        results file, a results file another sweep is writing.
    KeyboardInterrupt
        After saving the finished cells, when interrupted.

    Examples
    --------
    >>> import tempfile
    >>> grid = Grid({"delays": [0, 1], "iterations": 50}, seeds=2)
    >>> frame = run_sweep(grid, tempfile.mkdtemp(), n_jobs=1, progress=False)
    >>> len(frame), set(frame["status"])
    (4, {'ok'})
    """
    choice("backend", backend, BACKENDS)
    if backend == "dask":
        _require_dask(address)
    n_jobs = workers("n_jobs", n_jobs)
    cell_fn = run_cell if cell_fn is None else cell_fn  # looked up now, so tests can patch run_cell
    cells = grid.cells()
    out_dir = Path(out_dir)
    created = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        with ResultStore(out_dir / RESULTS_FILE) as store:
            statuses = store.statuses()
            todo = [c for c in cells if _needs_run(statuses.get(c.cell_id), retry_errors)]
            done = len(cells) - len(todo)
            if progress and done:
                print(f"resuming: {done} of {len(cells)} cells are in {store.path}", file=sys.stderr)
            if todo:
                if backend == "loky":
                    rows = _run_loky(todo, cell_fn, n_jobs)
                else:
                    rows = _run_dask(todo, cell_fn, address)
                _record(rows, store, cells, done, progress)
            frame = store.frame
    except BaseException:
        if created:  # a run that failed before storing anything leaves no empty folder behind
            with contextlib.suppress(OSError):
                out_dir.rmdir()
        raise
    return _rows_of(frame, cells)


def _require_dask(address: str | None) -> None:
    if not address:
        raise ValueError(
            "the dask backend needs the scheduler's address, e.g. tcp://127.0.0.1:8786"
        )
    try:
        import distributed  # noqa: F401  (only checked here: the workers' import is the real one)
    except ImportError:
        raise ImportError(
            "the dask backend needs dask.distributed, which is not installed: "
            "pip install 'galasim[dask]'"
        ) from None


def _needs_run(status: str | None, retry_errors: bool) -> bool:
    return status is None or (retry_errors and status == "error")


def _record(
    rows: Iterator[dict[str, Any]], store: ResultStore, cells: Sequence[Cell], done: int,
    progress: bool,
) -> None:
    """Store each row as it arrives; on an interrupt or a failed write, say what is saved."""
    try:
        _store_rows(rows, store, done, len(cells), progress)
    except KeyboardInterrupt:
        _flush(store, cells)
        print(
            f"\ninterrupted: {_saved(store, cells)} of {len(cells)} cells are saved in {store.path}; "
            "run the same sweep again to resume",
            file=sys.stderr,
        )
        raise
    _flush(store, cells)


def _flush(store: ResultStore, cells: Sequence[Cell]) -> None:
    """Write the buffered rows; if the disk is full (or another OS error), say what is saved."""
    try:
        store.flush()
    except OSError as exc:
        raise OSError(
            f"cannot write {store.path} ({exc.strerror or exc}): {_saved(store, cells)} of "
            f"{len(cells)} cells are saved there, the {len(store.pending)} finished since are not; "
            "free some space (or fix the cause), then run the same sweep again to resume"
        ) from None


def _saved(store: ResultStore, cells: Sequence[Cell]) -> int:
    saved = store.saved_ids()
    return sum(cell.cell_id in saved for cell in cells)


def _store_rows(
    rows: Iterator[dict[str, Any]], store: ResultStore, done: int, total: int, progress: bool
) -> None:
    bar = tqdm(
        total=total, initial=done, unit="cell", desc="sweep", file=sys.stderr, disable=not progress,
        dynamic_ncols=True, smoothing=0.1,
        # Without a terminal (a log file, CI) redraws are separate lines: keep them rare.
        mininterval=0.5 if sys.stderr.isatty() else 30,
    )
    errors = 0
    with bar, contextlib.closing(rows), sigterm_as_interrupt():
        for row in rows:
            store.add(row)
            bar.update(1)
            if row["status"] == "error":
                errors += 1
                bar.set_postfix(errors=errors, refresh=False)


def _run_loky(
    todo: Sequence[Cell], cell_fn: CellFunction, n_jobs: int
) -> Iterator[dict[str, Any]]:
    # batch_size="auto" groups quick cells into one task, so that pickling and inter-process round
    # trips do not eat the parallel speed-up; the rows are still yielded, and stored, one by one.
    # Closing this generator early (an interrupt, an error) makes joblib kill the workers; a
    # parent killed outright cannot, so every worker watches its parent (_exit_with_parent).
    with parallel_config("loky", initializer=_exit_with_parent, initargs=(os.getpid(),)):
        parallel = Parallel(n_jobs=n_jobs, return_as="generator_unordered", batch_size="auto")
    yield from parallel(delayed(_execute)(cell, cell_fn) for cell in todo)


def _exit_with_parent(parent: int) -> None:
    """Worker initializer: exit once the sweep process is gone (even killed by SIGKILL).

    Without it an orphaned loky worker idles for its 5-minute timeout, holding memory.
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, name="galasim-parent-watch", daemon=True).start()


def _run_dask(
    todo: Sequence[Cell], cell_fn: CellFunction, address: str
) -> Iterator[dict[str, Any]]:
    from distributed import Client, as_completed  # optional dependency: only for this backend

    try:
        client = Client(address, timeout="10s", set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise ValueError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
    with client:
        # pure=False: a retried cell must run again, not come back from the cluster's cache.
        futures = client.map(_execute, todo, cell_fn=cell_fn, pure=False)
        try:
            for future in as_completed(futures, loop=client.loop):
                yield future.result()
        finally:
            client.cancel(futures)


def _execute(cell: Cell, cell_fn: CellFunction) -> dict[str, Any]:
    """Run one cell (in a worker) into a flat row; an exception makes an error row, not a crash."""
    try:
        summary = _checked_summary(cell_fn(dict(cell.config)))
        status, error = "ok", ""
    except Exception as exc:  # any failure of one cell is that cell's result
        summary, status, error = {}, "error", f"{type(exc).__name__}: {exc}"
    finished = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")
    config = {COLUMNS[name]: value for name, value in cell.config.items()}
    key = {"cell_id": cell.cell_id, "status": status, "error": error, "computed_at": finished}
    return key | config | summary


def _checked_summary(summary: Mapping[str, Any]) -> dict[str, Any]:
    # A summary becomes columns of a Parquet table: it must be flat scalars that do not shadow the
    # row's own columns. numpy scalars are unwrapped so every row has plain Python values.
    reserved = set(KEY_COLUMNS) | set(COLUMNS.values())
    checked = {}
    for key, value in summary.items():
        value = value.item() if isinstance(value, np.generic) else value
        if key in reserved:
            raise ValueError(f"summary key {key!r} collides with a results column")
        if value is not None and not isinstance(value, (str, int, float, bool)):
            raise TypeError(f"summary value {key}={value!r} is not a scalar")
        checked[key] = value
    return checked


def _rows_of(frame: pd.DataFrame, cells: Sequence[Cell]) -> pd.DataFrame:
    """The rows of these cells, in grid order (the store holds them in completion order)."""
    order = {cell.cell_id: index for index, cell in enumerate(cells)}
    rows = frame[frame["cell_id"].isin(order)]
    return rows.sort_values("cell_id", key=lambda ids: ids.map(order)).reset_index(drop=True)


# Many small cells (mappings for Grid.from_mapping): what a real sweep looks like, and enough of
# them to keep every worker busy. QUICK_BENCH_GRID is a smoke test: its figures mean nothing.
BENCH_GRID: dict[str, Any] = {
    "protocol": ["gala", "allreduce"],
    "delays": [0, 0.5, 1, 2, 4, 8],
    "seeds": 8,
}
QUICK_BENCH_GRID: dict[str, Any] = {"agents": [4], "iterations": [20], "seeds": 4}


def bench_sweep_scaling(
    quick: bool = False,
    repeats: int = 5,
    *,
    grid: Grid | None = None,
    jobs: Sequence[int] | None = None,
    cell_fn: CellFunction | None = None,
) -> pd.DataFrame:
    """Throughput of the same sweep on one core and on all of them (``galasim bench sweep``).

    Each run sweeps the whole grid into a fresh temporary directory, results store included. The
    workers are started, and have imported the simulator, before the clock starts: the figure is
    the steady-state throughput of a sweep, not the one-off start-up of a process pool.

    Parameters
    ----------
    quick : bool
        Use :data:`QUICK_BENCH_GRID` (a smoke test) instead of :data:`BENCH_GRID`.
    repeats : int
        Runs per worker count; the median time is reported.
    grid : Grid, optional
        Another sweep to time (overrides ``quick``).
    jobs : sequence of int, optional
        Worker counts to compare; default 1 and every core.
    cell_fn : callable, optional
        As in :func:`run_sweep`; default :func:`run_cell`.

    Returns
    -------
    pandas.DataFrame
        One row per worker count: ``n_jobs``, ``cells``, ``median_s``, ``cells_per_s`` and
        ``speedup`` over the first row. The goal on 2 cores: a speedup of at least 1.7.

    Examples
    --------
    >>> table = bench_sweep_scaling(quick=True, repeats=1, jobs=(1,))
    >>> table[["n_jobs", "cells", "speedup"]].to_dict("records")
    [{'n_jobs': 1, 'cells': 4, 'speedup': 1.0}]
    """
    if grid is None:
        grid = Grid.from_mapping(QUICK_BENCH_GRID if quick else BENCH_GRID)
    cell_fn = run_cell if cell_fn is None else cell_fn
    jobs = list(dict.fromkeys([1, effective_n_jobs(-1)])) if jobs is None else jobs
    first = grid.cells()[0]
    rows = []
    for n_jobs in jobs:
        warm_up = (delayed(_execute)(first, cell_fn) for _ in range(effective_n_jobs(n_jobs)))
        Parallel(n_jobs=n_jobs)(warm_up)
        times = []
        for _ in range(repeats):
            with tempfile.TemporaryDirectory() as out:
                start = time.perf_counter()
                run_sweep(grid, out, n_jobs=n_jobs, progress=False, cell_fn=cell_fn)
                times.append(time.perf_counter() - start)
        median = statistics.median(times)
        rows.append({"n_jobs": n_jobs, "cells": len(grid), "median_s": median,
                     "cells_per_s": len(grid) / median})
    table = pd.DataFrame(rows)
    table["speedup"] = table["cells_per_s"] / table["cells_per_s"].iloc[0]
    return table
