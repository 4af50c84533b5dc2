"""CSV logs (always) and TensorBoard event files (optional), resumable without duplicated rows.

Each CSV file is append-only and its row count is saved in every checkpoint; on ``--resume`` the
file is cut back to that count before training continues, so rows written after the last
checkpoint (whose training is redone) are neither duplicated nor lost. TensorBoard's
``purge_step`` does the same for event files.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any


class CsvLog:
    """An append-only CSV file with fixed columns, flushed after every row."""

    def __init__(self, path: str | Path, columns: list[str], keep_rows: int | None = None):
        self.path = Path(path)
        self.columns = list(columns)
        self.rows = 0
        if keep_rows is not None and self.path.exists():
            self._truncate(keep_rows)
        new = not self.path.exists() or self.path.stat().st_size == 0
        self.fh = open(self.path, "a", newline="")
        self.writer = csv.writer(self.fh)
        if new:
            self.writer.writerow(self.columns)
            self.fh.flush()

    def _truncate(self, keep_rows: int) -> None:
        with open(self.path, "rb") as fh:
            lines = fh.readlines()
        if lines and lines[0].decode().strip().split(",") != self.columns:
            raise ValueError(f"{self.path} has columns {lines[0].decode().strip()!r}, expected "
                             f"{','.join(self.columns)!r}: not a log of this kind of run")
        keep = lines[: 1 + keep_rows]
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "wb") as fh:
            fh.writelines(keep)
        os.replace(tmp, self.path)
        self.rows = max(len(keep) - 1, 0)

    def write(self, row: dict[str, Any]) -> None:
        self.writer.writerow([_fmt(row.get(c, "")) for c in self.columns])
        self.fh.flush()
        self.rows += 1

    def close(self) -> None:
        self.fh.close()


def _fmt(value: Any) -> Any:
    return f"{value:.6g}" if isinstance(value, float) else value


class Logger:
    """One learner's CSV logs and TensorBoard writer.

    ``episodes.csv``-style rows go through :meth:`episode`, periodic training rows through :meth:`train`.
    ``rows`` and ``purge_step`` are a checkpoint's row counts and frames, to resume from; without them
    the logs start afresh, and the rows an interrupted attempt left in ``folder`` are cut.
    """

    def __init__(self, folder: str | Path, name: str, episode_columns: list[str], train_columns: list[str],
                 rows: dict[str, int] | None = None, tensorboard: bool = True, purge_step: int = 0):
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        rows = rows or {}
        self.episodes = CsvLog(folder / f"{name}_episodes.csv", episode_columns, rows.get("episodes", 0))
        self.train_rows = CsvLog(folder / f"{name}_train.csv", train_columns, rows.get("train", 0))
        self.tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(folder / "tensorboard" / name), purge_step=purge_step)

    def row_counts(self) -> dict[str, int]:
        return {"episodes": self.episodes.rows, "train": self.train_rows.rows}

    def episode(self, row: dict[str, Any], step: int) -> None:
        self.episodes.write(row)
        if self.tb is not None:
            self.tb.add_scalar("rollout/episode_return", row["return"], step)
            self.tb.add_scalar("rollout/episode_length", row["length"], step)

    def train(self, row: dict[str, Any], step: int, keys: tuple[str, ...] = ()) -> None:
        self.train_rows.write(row)
        if self.tb is not None:
            for key in keys:
                value = row.get(key)
                if isinstance(value, (int, float)):
                    self.tb.add_scalar(key if "/" in key else f"train/{key}", value, step)

    def close(self) -> None:
        self.episodes.close()
        self.train_rows.close()
        if self.tb is not None:
            self.tb.close()
