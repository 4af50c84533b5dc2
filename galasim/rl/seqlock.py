"""The learners' published parameters in shared memory, read whole by the epsilon-ball monitor.

Each ``--mode async`` learner copies its parameters into its row of ``published`` after every
update, and the parent's monitor copies the rows to measure the consensus distance. A row copied
while its learner rewrites it would mix two iterates (up to one update's worth of error: on Pong
||delta|| is 0.2-0.3 in the median of the logged updates and up to 0.9, against consensus
distances of 0.3-0.8). A sequence lock prevents that: the writer makes its ``version`` odd for the
duration of the copy, and the reader keeps a copy only if the version was even and unchanged
around it (x86 orders stores with stores and loads with loads, which this relies on).
"""
from __future__ import annotations

import time

import torch

# A reader retries for at most this long; a learner that died in the middle of a write leaves its
# version odd, and its row is then taken as it is (it is left out as soon as it is declared dead).
MAX_WAIT_SECONDS = 1.0


def publish(published: torch.Tensor, version: torch.Tensor, rank: int, params: torch.Tensor) -> None:
    """Copy ``params`` into row ``rank`` of ``published``, the version odd while it is copied."""
    version[rank] += 1
    published[rank].copy_(params)
    version[rank] += 1


def read(published: torch.Tensor, version: torch.Tensor, ranks: list[int],
         out: torch.Tensor | None = None) -> torch.Tensor:
    """Copies of the rows ``ranks``, each from one complete write.

    They go into the first ``len(ranks)`` rows of ``out`` if it is given (of any floating dtype:
    the parent's monitor reads into one float64 buffer that it keeps, instead of allocating a
    copy every row), else into a new tensor.

    Examples
    --------
    >>> published, version = torch.zeros(3, 2), torch.zeros(3, dtype=torch.int64)
    >>> publish(published, version, 2, torch.tensor([1.0, 2.0]))
    >>> read(published, version, [2, 0]).tolist(), version.tolist()
    ([[1.0, 2.0], [0.0, 0.0]], [0, 0, 2])
    >>> buffer = torch.full((3, 2), -1.0, dtype=torch.float64)
    >>> read(published, version, [2], out=buffer).dtype, buffer.tolist()
    (torch.float64, [[1.0, 2.0], [-1.0, -1.0], [-1.0, -1.0]])
    """
    if out is None:
        out = torch.empty(len(ranks), published.shape[1], dtype=published.dtype)
    out = out[:len(ranks)]
    for i, rank in enumerate(ranks):
        deadline = time.perf_counter() + MAX_WAIT_SECONDS
        while True:
            before = int(version[rank])
            out[i].copy_(published[rank])
            if (before % 2 == 0 and int(version[rank]) == before) or time.perf_counter() > deadline:
                break
    return out
