"""Atomic file writes: results, tables, reports and plots are never left half-written.

Everything goes to a temporary file in the destination folder, is flushed and fsynced, then renamed
over the destination (and the folder is fsynced), so a crash or a kill at any moment leaves the
old file or the new one.

The new file gets the usual mode of a created file (0666 less the umask), not the 0600 of the
temporary file. A temporary file is named after its writer's process id, so a later write to the
same destination removes the ones whose writer was killed (no other process can own them).
"""
from __future__ import annotations

import contextlib
import os
import re
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
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_orphans(path)
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp")
    except OSError as exc:
        raise _naming(exc, path) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), 0o666 & ~_umask())
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temp, path)
    except BaseException as exc:
        # Also on KeyboardInterrupt: the old file is intact, only the half-written copy goes.
        Path(temp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _naming(exc, path) from None
        raise
    # The rename itself is durable only once the directory entry is on disk.
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path


def _umask() -> int:
    # The only way to read the umask is to set it; set it straight back.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _remove_orphans(path: Path) -> None:
    """Remove the temporary files of earlier writes to ``path`` whose process no longer exists."""
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(\d+)-[^.]*\.tmp")
    for entry in os.scandir(path.parent):
        match = pattern.fullmatch(entry.name)
        if match and not _alive(int(match.group(1))):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _naming(exc: OSError, path: Path) -> OSError:
    """``exc`` about the destination the user named, not the temporary file."""
    return OSError(exc.errno, exc.strerror, str(path)) if exc.errno else exc


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
