"""The results table of a sweep: one Parquet file, rows added or replaced but never dropped.

Every write goes to a temporary file in the same directory, is fsynced, then renamed over the old
file, so a crash or a kill at any moment leaves either the old table or the new one, never a torn
file. A lock file keeps two sweeps from writing the same table (the second would drop the first's
rows when it replaces the file).
"""
from __future__ import annotations

import fcntl
import numbers
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from galasim.atomic import atomic_write

RESULTS_FILE = "results.parquet"
# The first columns of every row; the configuration and the summary follow.
KEY_COLUMNS = ("cell_id", "status", "error", "computed_at")


def read_results(path: str | Path) -> pd.DataFrame:
    """Read a sweep's results table.

    Parameters
    ----------
    path : str or Path
        A ``results.parquet`` written by a sweep.

    Returns
    -------
    pandas.DataFrame
        One row per finished cell.

    Raises
    ------
    ValueError
        If the file cannot be read or is not a sweep's results table; the message names the file.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / RESULTS_FILE
    >>> with ResultStore(path) as store:
    ...     store.add({"cell_id": "a1", "status": "ok", "error": "", "computed_at": "now",
    ...                "x": 1.0})
    >>> read_results(path)[["cell_id", "x"]].values.tolist()
    [['a1', 1.0]]
    """
    path = Path(path)
    advice = (
        f"move it aside (e.g. mv {path} {path}.bad) to start afresh; galasim never overwrites it"
    )
    try:
        frame = pq.read_table(path).to_pandas()
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise ValueError(f"cannot read the results file {path} ({exc}); {advice}") from None
    missing = [column for column in KEY_COLUMNS if column not in frame.columns]
    if missing:
        raise ValueError(
            f"{path} is not a galasim sweep results file (no {', '.join(missing)} column); {advice}"
        )
    return frame


class ResultStore:
    """Append-only, resumable results table in one Parquet file, flushed atomically.

    Rows are buffered and the whole table is rewritten at most every ``flush_interval`` seconds,
    so a sweep of many quick cells does not rewrite the file once per cell; :meth:`close` (and
    leaving the ``with`` block, also on an exception) flushes the rest. A row whose ``cell_id`` is
    already stored replaces the old row (that is how retried errors are recorded).

    Parameters
    ----------
    path : str or Path
        The results file; it is created on the first flush. Its directory must exist.
    flush_interval : float
        Seconds between rewrites while rows arrive.

    Raises
    ------
    ValueError
        If the existing file is unreadable (it is left untouched), or another sweep holds the lock.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / RESULTS_FILE
    >>> with ResultStore(path) as store:
    ...     store.add({"cell_id": "a1", "status": "error", "error": "boom", "computed_at": "now"})
    >>> with ResultStore(path) as store:
    ...     store.statuses()
    {'a1': 'error'}
    """

    def __init__(self, path: str | Path, flush_interval: float = 1.0) -> None:
        self.path = Path(path)
        self.flush_interval = flush_interval
        self._lock = _lock(self.path)
        try:
            self._frame = read_results(self.path) if self.path.exists() else pd.DataFrame()
        except ValueError:
            os.close(self._lock)
            raise
        self._pending: list[dict[str, Any]] = []
        self._last_flush = time.monotonic()

    def statuses(self) -> dict[str, str]:
        """``cell_id -> status`` of every stored or buffered row."""
        frame = self._frame
        stored = dict(zip(frame["cell_id"], frame["status"])) if len(frame) else {}
        return stored | {row["cell_id"]: row["status"] for row in self._pending}

    def add(self, row: Mapping[str, Any]) -> None:
        """Buffer one finished cell (a flat mapping with :data:`KEY_COLUMNS`); flush when due."""
        self._pending.append(dict(row))
        if time.monotonic() - self._last_flush >= self.flush_interval:
            self.flush()

    def flush(self) -> None:
        """Write the buffered rows: the whole table to a temporary file renamed over the old one."""
        if self._pending:
            frame = _combine(self._frame, pd.DataFrame(self._pending))
            atomic_write(self.path, lambda fh: pq.write_table(_to_arrow(frame), fh))
            self._frame = frame
            self._pending = []
        self._last_flush = time.monotonic()

    @property
    def frame(self) -> pd.DataFrame:
        """Every row written so far (flushed or not), one per cell id."""
        return _combine(self._frame, pd.DataFrame(self._pending)) if self._pending else self._frame

    def close(self) -> None:
        """Flush, then release the lock."""
        if self._lock < 0:
            return
        try:
            self.flush()
        finally:
            os.close(self._lock)
            self._lock = -1

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _lock(path: Path) -> int:
    """Hold an exclusive lock on ``<path>.lock``; the OS releases it when the process dies."""
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ValueError(
            f"another galasim sweep is writing {path}; "
            "wait for it to finish or choose another --out"
        ) from None
    return fd


def _combine(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    if old.empty:
        return new.drop_duplicates("cell_id", keep="last").reset_index(drop=True)
    combined = pd.concat([old, new], ignore_index=True)
    return combined.drop_duplicates("cell_id", keep="last").reset_index(drop=True)


def _to_arrow(frame: pd.DataFrame) -> pa.Table:
    # Parquet columns have one type. A column that mixes kinds (delays 0.5 beside "uniform:0.5,1.5",
    # sync_freq 4 beside "inf") is stored as text; a column of numbers only stays numeric.
    frame = frame.copy()
    for column in frame.columns:
        values = frame[column]
        if values.dtype == object and len({_kind(v) for v in values if not _missing(v)}) > 1:
            frame[column] = [None if _missing(v) else str(v) for v in values]
    return pa.Table.from_pandas(frame, preserve_index=False)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _kind(value: Any) -> type:
    if isinstance(value, (bool, np.bool_)):
        return bool
    if isinstance(value, numbers.Number):
        return numbers.Number
    return type(value)
