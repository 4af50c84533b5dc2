"""The results table of a sweep: one Parquet file, rows added or replaced but never dropped.

Every write goes to a temporary file in the same directory, is fsynced, then renamed over the old
file, so a crash or a kill at any moment leaves either the old table or the new one, never a torn
file. A lock file keeps two sweeps from writing the same table (the second would drop the first's
rows when it replaces the file); it is removed when the sweep ends.

Seeds are stored exactly, as a uint64 column: simulate takes seeds up to 2**64 - 1, which int64
cannot hold and float64 rounds (a seed that does not reproduce its row). A value that Parquet cannot
store in its column (an integer beyond 64 bits from a custom cell function) is stored as text
rather than costing the other rows.
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

from galasim._validation import SEED_MAX
from galasim.atomic import atomic_write

RESULTS_FILE = "results.parquet"
# The first columns of every row; the configuration and the summary follow.
KEY_COLUMNS = ("cell_id", "status", "error", "computed_at")
SEED_COLUMN = "seed"


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
    repeated = frame["cell_id"][frame["cell_id"].duplicated()]
    if len(repeated):
        # Only a hand-edited file has these: every write keeps one row per cell id. Averaging the
        # copies would count one cell twice.
        raise ValueError(
            f"{path} has {len(repeated)} repeated cell id(s), e.g. {repeated.iloc[0]!r}: each cell "
            f"must have one row; keep one row per cell_id (e.g. with pandas drop_duplicates) or {advice}"
        )
    try:
        return _exact_seeds(frame)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}; {advice}") from None


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
        self._lock_path = self.path.with_name(self.path.name + ".lock")
        self._lock = _lock(self._lock_path, self.path)
        try:
            self._frame = read_results(self.path) if self.path.exists() else pd.DataFrame()
        except ValueError:
            _unlock(self._lock, self._lock_path)
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
    def pending(self) -> list[dict[str, Any]]:
        """The rows added but not yet written."""
        return self._pending

    def saved_ids(self) -> set[str]:
        """The cell ids written to the file."""
        return set(self._frame["cell_id"]) if len(self._frame) else set()

    @property
    def frame(self) -> pd.DataFrame:
        """Every row written so far (flushed or not), one per cell id."""
        return _combine(self._frame, pd.DataFrame(self._pending)) if self._pending else self._frame

    def close(self) -> None:
        """Flush, then release the lock (and remove the lock file)."""
        if self._lock < 0:
            return
        try:
            self.flush()
        finally:
            _unlock(self._lock, self._lock_path)
            self._lock = -1

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, exc_type: type | None, *exc_info: object) -> None:
        if exc_type is None:
            self.close()
            return
        try:
            self.close()
        except OSError:
            pass  # the error in flight (often this very failed write) is the one to report




def _lock(lock_path: Path, path: Path) -> int:
    """Hold an exclusive lock on ``lock_path``; the OS releases it when the process dies."""
    while True:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ValueError(
                f"another galasim sweep is writing {path}; "
                "wait for it to finish or choose another --out"
            ) from None
        # The holder we waited for removes the file before it unlocks: our lock is then on a file
        # nobody else will open, so lock the path's current file instead.
        if _same_file(fd, lock_path):
            return fd
        os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def _unlock(fd: int, lock_path: Path) -> None:
    # Removed while still locked, so that no one can lock this file after us (see _lock).
    lock_path.unlink(missing_ok=True)
    os.close(fd)


def _combine(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    new = _exact_seeds(new)
    if old.empty:
        return new.drop_duplicates("cell_id", keep="last").reset_index(drop=True)
    # Both seed columns are uint64: pandas would turn int64 beside uint64 into float64.
    combined = pd.concat([old, new], ignore_index=True)
    return combined.drop_duplicates("cell_id", keep="last").reset_index(drop=True)


def _exact_seeds(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its seed column as uint64, or a ValueError naming a value that is no seed."""
    if SEED_COLUMN not in frame.columns or frame[SEED_COLUMN].dtype == np.uint64:
        return frame
    seeds = frame[SEED_COLUMN].tolist()
    for seed in seeds:
        whole = isinstance(seed, numbers.Integral) or (isinstance(seed, float) and seed.is_integer())
        if isinstance(seed, bool) or not whole or not 0 <= seed <= SEED_MAX:
            raise ValueError(f"the seed column holds {seed!r}; seeds are integers from 0 to 2**64 - 1")
    return frame.assign(**{SEED_COLUMN: np.array([int(seed) for seed in seeds], dtype=np.uint64)})


def _to_arrow(frame: pd.DataFrame) -> pa.Table:
    return pa.table({column: _arrow_column(frame[column]) for column in frame.columns})


def _arrow_column(values: pd.Series) -> pa.Array:
    # Parquet columns have one type. A column that mixes kinds (delays 0.5 beside "uniform:0.5,1.5",
    # sync_freq 4 beside "inf") is stored as text; a column of numbers only stays numeric. So is a
    # column Arrow cannot convert (an int beyond 64 bits): losing the column's type is better than
    # losing the rows.
    mixed = values.dtype == object and len({_kind(v) for v in values if not _missing(v)}) > 1
    if not mixed:
        try:
            return pa.Array.from_pandas(values)
        except (pa.ArrowException, OverflowError, TypeError, ValueError):
            pass
    return pa.array([None if _missing(v) else str(v) for v in values], type=pa.string())


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _kind(value: Any) -> type:
    if isinstance(value, (bool, np.bool_)):
        return bool
    if isinstance(value, numbers.Number):
        return numbers.Number
    return type(value)
