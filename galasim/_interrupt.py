"""SIGTERM (what ``kill`` sends) handled like Ctrl-C, so that long work cleans up and says so."""
from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Raise ``KeyboardInterrupt`` on SIGTERM inside the block (main thread only).

    Examples
    --------
    >>> with sigterm_as_interrupt():
    ...     pass
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be installed from the main thread
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class StopRequest:
    """SIGINT and SIGTERM asking a loop to stop at its next safe point (main thread only).

    Until :meth:`arm` a signal interrupts at once (``KeyboardInterrupt``): there is nothing to save
    yet, and a process waiting for its peers must not wait on. Once armed, the first signal only sets
    :attr:`requested`, so the loop can finish its step and write a checkpoint; a second one
    interrupts at once, for a user who does not want to wait.
    """

    def __init__(self) -> None:
        self.requested = False
        self.armed = False
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, self._handle)

    def arm(self) -> None:
        self.armed = True

    def _handle(self, signum: int, frame: object) -> None:
        if not self.armed or self.requested:
            raise KeyboardInterrupt
        self.requested = True
