"""The event log of a simulated run (``simulate(..., record_events=True)``).

Both engines append one entry per event they process, in processing order: ``update`` (the agent
applied its local update), ``write`` (the agent wrote its current parameters on the edge),
``arrive`` (the message on the edge became visible to its receiver, ``agent``), ``mix`` (the agent
mixed every message that had arrived on its in-edges and was unread), ``lost`` (a message was
dropped, or arrived on a removed link; ``agent`` is the sender), ``crash`` and ``link`` (a link
was removed; ``agent`` is its sender), ``repair`` (the crash of ``agent`` was detected and the
topology repaired around it: galasim.gossip.repair) and ``rejoin`` (``agent`` restarted with the
parameters of the sender of ``edge``, -1: none alive). Real learners replay this order through
the gossip layer.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

KINDS = ("update", "write", "arrive", "mix", "lost", "crash", "link", "repair", "rejoin")
UPDATE, WRITE, ARRIVE, MIX, LOST, CRASH, LINK, REPAIR, REJOIN = range(len(KINDS))  # codes shared with ext/_scheduler.pyx
# Aligned: the same layout as the Cython engine's C struct LogEntry, so its log is copied as bytes.
LOG_DTYPE = np.dtype([("time", "f8"), ("kind", "i4"), ("agent", "i8"), ("edge", "i8")], align=True)


def as_frame(log: np.ndarray) -> pd.DataFrame:
    """The engines' structured log as a DataFrame with ``kind`` spelled out."""
    frame = pd.DataFrame(log)
    frame["kind"] = pd.Categorical.from_codes(frame["kind"], categories=list(KINDS))
    return frame
