"""Atomic file writes: results, tables, reports and plots are never left half-written.

Everything goes to a temporary file in the destination folder, is flushed and fsynced, then renamed
over the destination (and the folder is fsynced), so a crash or a kill at any moment leaves the
old file or the new one.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Create or replace ``path`` atomically with what ``write`` puts into a binary file.

    Parameters
    ----------
    path : str or Path
        The destination; its directory must exist.
    write : callable
        Called with an open binary file; whatever it writes becomes the new content of ``path``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "hello.txt"
    >>> _ = atomic_write(path, lambda fh: fh.write(b"hello"))
    >>> path.read_bytes()
    b'hello'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temp, path)
    except BaseException:
        # Also on KeyboardInterrupt: the old file is intact, only the half-written copy goes.
        Path(temp).unlink(missing_ok=True)
        raise
    # The rename itself is durable only once the directory entry is on disk.
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Create or replace ``path`` atomically with ``text`` (UTF-8)."""
    return atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))


def atomic_savefig(figure: Any, path: str | os.PathLike, dpi: int = 120) -> Path:
    """Save a matplotlib figure as PNG atomically, then close it."""
    import matplotlib.pyplot as plt

    try:
        return atomic_write(path, lambda fh: figure.savefig(fh, format="png", dpi=dpi, bbox_inches="tight"))
    finally:
        plt.close(figure)
