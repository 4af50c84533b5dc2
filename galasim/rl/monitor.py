"""The epsilon-ball of real learners while they train, and what a run's summary may claim about it.

One mechanism for both multi-process modes: the parent of ``--mode async`` and the monitoring rank
of ``--mode dist`` each hand :meth:`NetworkLog.write` the learners' latest parameters every
``log_every`` seconds. It writes ``logs/network.csv`` (consensus distance max_i ||x_i - mean||,
diameter, L, staleness) and ``logs/learner_distance.csv`` (each learner's distance to the mean),
and keeps the largest distance and diameter of the whole run, earlier launches included.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from galasim.rl.logger import CsvLog

NETWORK_COLUMNS = ["time", "total_frames", "running", "distance", "diameter", "empirical", "L", "max_staleness"]
DISTANCE_COLUMNS = ["time", "total_frames", "learner", "distance"]



def consensus(published: torch.Tensor) -> tuple[float, float]:
    """``(max_i ||x_i - mean||, max_ij ||x_i - x_j||)`` of the rows (learners' latest parameters).

    Examples
    --------
    >>> consensus(torch.tensor([[0.0, 0.0], [3.0, 4.0]]))
    (2.5, 5.0)
    """
    distances, diameter = spread(published)
    return max(distances), diameter


def spread(published: torch.Tensor, overwrite: bool = False) -> tuple[list[float], float]:
    """``||x_i - mean||`` of every row (each learner's distance to the network's mean), and the
    diameter ``max_ij ||x_i - x_j||``.

    Both come from one float64 Gram matrix of the centred rows, so the parameters are converted
    and read once: the monitor runs this every ``log_every`` seconds on millions of parameters per
    learner, on the cores the learners train on. ``overwrite=True`` lets a float64 ``published``
    be centred in place rather than copied (a float32 one is copied all the same): a new float64
    copy of four Pong learners is 54 MB, which the allocator maps afresh at every call.

    Examples
    --------
    >>> spread(torch.tensor([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]]))
    ([5.0, 0.0, 5.0], 10.0)
    """
    centred = published.to(torch.float64, copy=not overwrite)
    centred -= centred.mean(0)
    gram = centred @ centred.T
    squared = gram.diagonal()
    # ||x_i - x_j||^2 from the centred Gram matrix; rounding can make a 0 slightly negative
    pairs = (squared[:, None] + squared[None, :] - 2 * gram).clamp_min(0)
    return squared.sqrt().tolist(), float(pairs.max().sqrt())


def rows_up_to(run: Path, frames: int, name: str = "network.csv") -> tuple[int, float]:
    """How many rows of a network log a resume keeps (those up to the checkpoints' total frames),
    and the time of the last of them, from which the resumed run's rows go on."""
    import pandas as pd

    file = Path(run) / "logs" / name
    table = pd.read_csv(file) if file.exists() else None
    if table is None or not len(table):
        return 0, 0.0
    kept = table[table["total_frames"] <= frames]
    return len(kept), float(kept["time"].max()) if len(kept) else 0.0


def logged_maxima(run: Path) -> tuple[float, float, int]:
    """The largest consensus distance and diameter in the run's ``network.csv`` so far, and the
    number of its rows that saw two or more learners iterating (the snapshots that can show a
    spread): a resumed run's summary covers the whole run, not only its last launch."""
    import pandas as pd

    file = Path(run) / "logs" / "network.csv"
    table = pd.read_csv(file) if file.exists() else None
    if table is None or not len(table):
        return 0.0, 0.0, 0
    return float(table["distance"].max()), float(table["diameter"].max()), int((table["running"] >= 2).sum())


class NetworkLog:
    """``logs/network.csv`` and ``logs/learner_distance.csv`` of a run, and their maxima.

    Parameters
    ----------
    run : Path
        The run folder.
    keep_frames : int, optional
        The total frames of the checkpoints the launch starts from (0 without any): the rows past
        them, written after the checkpoints (whose training is redone), are cut. ``None`` appends.
    clock : float
        Added to the elapsed time of every row, so that a resumed run's time goes on from its last
        kept row (:func:`rows_up_to`).
    tensorboard : bool
        Also write the distances to ``logs/tensorboard/network``.
    """

    def __init__(self, run: Path, keep_frames: int | None = None, clock: float = 0.0, tensorboard: bool = False):
        run = Path(run)
        keep = None if keep_frames is None else rows_up_to(run, keep_frames)[0]
        self.network = CsvLog(run / "logs" / "network.csv", NETWORK_COLUMNS, keep_rows=keep)
        keep = None if keep_frames is None else rows_up_to(run, keep_frames, "learner_distance.csv")[0]
        self.distances = CsvLog(run / "logs" / "learner_distance.csv", DISTANCE_COLUMNS, keep_rows=keep)
        self.clock = clock
        # samples: rows of two or more running learners, the snapshots that can show a spread
        self.empirical, self.diameter, self.samples = logged_maxima(run)
        self.tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(run / "logs" / "tensorboard" / "network"), purge_step=keep_frames)

    def write(self, elapsed: float, total_frames: int, learners: list[int], published: torch.Tensor,
              running: int, L: float, max_staleness: int) -> None:
        """One row: ``published`` holds the latest parameters of ``learners``, one row each (those
        that still iterate); ``running`` of them are past their first update. ``published`` is
        scratch space: a float64 one is centred in place (:func:`spread`)."""
        now = self.clock + elapsed
        distances, diameter = spread(published, overwrite=True) if learners else ([], 0.0)
        distance = max(distances, default=0.0)
        for r, d in zip(learners, distances):
            self.distances.write({"time": now, "total_frames": total_frames, "learner": r, "distance": d})
            if self.tb is not None:
                self.tb.add_scalar(f"distance_to_mean/learner{r}", d, total_frames)
        self.empirical = max(self.empirical, distance)
        self.diameter = max(self.diameter, diameter)
        self.samples += running >= 2
        self.network.write({"time": now, "total_frames": total_frames, "running": running,
                            "distance": distance, "diameter": diameter, "empirical": self.empirical,
                            "L": L, "max_staleness": max_staleness})
        if self.tb is not None:
            self.tb.add_scalar("network/consensus_distance", distance, total_frames)
            self.tb.add_scalar("network/diameter", diameter, total_frames)

    def close(self) -> None:
        self.network.close()
        self.distances.close()
        if self.tb is not None:
            self.tb.close()


def async_bounds(graph, lr: float, L: float, tau: int, empirical: float | None,
                 interrupted: bool = False) -> dict[str, Any]:
    """The closed-form epsilon of the measured L and staleness ``tau``, and whether the measured
    distance ``empirical`` lies within it; the bound itself is not claimed (:func:`async_bound_note`)."""
    from galasim.mixing import epsilon_bound

    bound = epsilon_bound(graph, lr, max(L, 1e-300), tau=tau, data=False)
    return {
        "epsilon": bound.epsilon, "log10_epsilon": bound.log10_epsilon,
        "empirical_within_epsilon": None if empirical is None else bool(empirical <= bound.epsilon),
        "bound_holds": None, "bound_note": async_bound_note(interrupted),
    }


def async_bound_note(interrupted: bool = False) -> str:
    """Why a real asynchronous run claims no bound (``--mode sim`` does; docs/training.md)."""
    return ("not claimed: the staleness of a real asynchronous run is measured in each receiver's own "
            "iterations, not in the theorem's global clock, and the learners' parameters are read at "
            "different times; --mode sim reports a proven bound"
            + ("; a failure interrupted the assumptions (see assumptions_interrupted)" if interrupted else ""))
