"""Checkpoints: one file per learner, written atomically, loaded with ``weights_only=True``.

``RUN/checkpoints/learner{r}.pt`` holds the learner's flat parameters, optimizer and sampling-RNG
state, its frame and update counters, its timers and gossip counters, the seconds it had trained
and the row counts of its CSV logs (so ``--resume`` cuts the logs back to the checkpoint, and the
logs' ``time``, timer and counter columns go on from where the checkpoint left them). Each file is
written to a temporary name and renamed over the old one (:func:`galasim.atomic.atomic_write`): a
kill at any moment leaves the old or the new checkpoint.
Environment state and in-flight gossip messages are not saved: a resumed learner starts new
episodes, and its first messages are written after its first update.
"""
from __future__ import annotations

from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import torch

from galasim.atomic import atomic_write

VERSION = 1


def path(run: str | Path, rank: int) -> Path:
    return Path(run) / "checkpoints" / f"learner{rank}.pt"


def exists(run: str | Path, rank: int) -> bool:
    return path(run, rank).exists()


def save_learner(run: str | Path, rank: int, learner: Any, logger: Any, gossip: Any = None,
                 seconds: float = 0.0) -> Path:
    """Write learner ``rank``'s checkpoint; ``seconds``: how long it has trained, over all launches."""
    state = {
        "version": VERSION,
        "learner": learner.state_dict(),
        "rows": logger.row_counts(),
        "gossip": None if gossip is None else asdict(gossip.stats),
        "seconds": float(seconds),
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


def restore_gossip_stats(stats: Any, state: dict[str, Any] | None) -> None:
    """Set a resumed learner's :class:`~galasim.gossip.buffer.GossipStats` counters from its
    checkpoint, so that its logged counters go on instead of starting again (checkpoints written
    before the counters were saved hold only ``max_staleness``). ``staleness`` is protocol state,
    not a counter (it decides when the learner blocks): it starts at 0, as the in-flight messages
    it counted against are not saved either."""
    saved = (state or {}).get("gossip") or {}
    for name in (f.name for f in fields(stats) if f.name in saved and f.name != "staleness"):
        setattr(stats, name, type(getattr(stats, name))(saved[name]))  # int or float, as declared
