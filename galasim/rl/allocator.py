"""glibc's malloc, set to reuse the large blocks a learner frees on every update.

An A2C update allocates and frees tensors of several megabytes: with the graph kept from acting,
every acting forward gets its own gradient of the Nature CNN's 512 x 3136 layer (6.4 MB) in the
backward pass. glibc serves blocks that large with ``mmap`` and returns them with ``munmap``, so each
is page-faulted in afresh; with the dynamic threshold it also trims the heap back to the system.
Fixing the ``mmap`` threshold at 32 MiB (glibc's maximum on 64-bit) and the trim threshold at
1 GiB keeps the blocks in the heap for the next update. On a Pong learner (one torch thread) the
update took ~20% less time and the peak memory did not change (docs/benchmarks.md). Either
setting alone made it slower: both are needed.

``GALASIM_MALLOC=glibc`` keeps glibc's defaults (the baseline of ``galasim bench train``). Elsewhere
than glibc (macOS, musl) nothing is changed.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters, from glibc's malloc.h
MMAP_THRESHOLD = 32 * 1024 * 1024
TRIM_THRESHOLD = 1024 * 1024 * 1024


def keep_freed_blocks() -> bool:
    """Set this process's glibc malloc thresholds as above; whether they were set.

    Examples
    --------
    >>> keep_freed_blocks() in (True, False)
    True
    """
    if os.environ.get("GALASIM_MALLOC") == "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
