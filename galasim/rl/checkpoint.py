"""Checkpoints: one file per learner, written atomically, loaded with ``weights_only=True``.

``RUN/checkpoints/learner{r}.pt`` holds the learner's flat parameters, optimizer and sampling-RNG
state, its frame and update counters and the row counts of its CSV logs (so ``--resume`` cuts the
logs back to the checkpoint). Each file is written to a temporary name and renamed over the old one
(:func:`galasim.atomic.atomic_write`): a kill at any moment leaves the old or the new checkpoint.
Environment state and in-flight gossip messages are not saved: a resumed learner starts new
episodes, and its first messages are written after its first update.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from galasim.atomic import atomic_write

VERSION = 1


def path(run: str | Path, rank: int) -> Path:
    return Path(run) / "checkpoints" / f"learner{rank}.pt"


def exists(run: str | Path, rank: int) -> bool:
    return path(run, rank).exists()


def save_learner(run: str | Path, rank: int, learner: Any, logger: Any, gossip: Any = None) -> Path:
    state = {
        "version": VERSION,
        "learner": learner.state_dict(),
        "rows": logger.row_counts(),
        "gossip": None if gossip is None else {"max_staleness": gossip.stats.max_staleness},
        "config": learner.cfg.to_dict(),
    }
    return atomic_write(path(run, rank), lambda fh: torch.save(state, fh))


def load(file: str | Path) -> dict[str, Any]:
    """Load a checkpoint file safely (``weights_only=True``); a damaged file is a one-line ValueError."""
    file = Path(file)
    if not file.is_file():
        raise FileNotFoundError(f"checkpoint {str(file)!r} does not exist")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, garbage bytes, a pickle with disallowed globals...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"checkpoint {str(file)!r} is corrupt or not a galasim checkpoint "
                         f"({type(exc).__name__}: {first[:120]})") from None
    if not isinstance(state, dict) or state.get("version") != VERSION or "learner" not in state:
        raise ValueError(f"checkpoint {str(file)!r} is not a galasim checkpoint (version {VERSION})")
    return state


def load_learner(run: str | Path, rank: int) -> dict[str, Any]:
    return load(path(run, rank))
