"""Transports: where GALA's messages live between a write and a read.

A transport owns one message slot per directed edge ``e = (src, dst)`` of the communication graph
and a little state per slot: *fresh* (written and visible to ``dst``, not yet read) or *free*
(read, or never written). :class:`galasim.gossip.buffer.GossipBuffer` implements the protocol rules
on top of this interface only, so a learner never knows which transport carries its messages:

* :class:`InProcessTransport` (this module): plain tensors in one process. Deterministic; with
  ``deliver="manual"`` a written message becomes visible only when :meth:`InProcessTransport.deliver`
  is called, which lets a test replay a simulated run's event order (write, arrive, mix).
* :class:`galasim.gossip.shm.SharedMemoryTransport`: slots in shared memory (CPU, or one CUDA
  device shared by several processes), one process per learner.
* the *virtual* transport is the simulator itself (:func:`galasim.simulate`), which implements the
  same rules in its event scheduler.

A slot is single-writer (``src``) and single-reader (``dst``), and the writer only writes into a
free slot, so no lock is needed: a message is never overwritten while it is read.
"""
from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch

Edge = tuple[int, int]


class Transport(ABC):
    """Message slots, one per directed edge ``(src, dst)``, each holding a flat parameter vector.

    Parameters
    ----------
    edges : sequence of (int, int)
        The directed edges; edge id ``e`` is the position in this sequence.
    """

    def __init__(self, edges: Sequence[Edge]):
        self.edges: list[Edge] = [(int(s), int(d)) for s, d in edges]
        if len(set(self.edges)) != len(self.edges):
            raise ValueError("transport edges must be distinct")
        if any(s == d for s, d in self.edges):
            raise ValueError("a transport edge cannot be a self-loop")
        self.agents = 1 + max((max(e) for e in self.edges), default=-1)

    def out_edges(self, agent: int) -> list[int]:
        """Edge ids on which ``agent`` sends, in edge order."""
        return [e for e, (s, _) in enumerate(self.edges) if s == agent]

    def in_edges(self, agent: int) -> list[int]:
        """Edge ids on which ``agent`` receives, in edge order."""
        return [e for e, (_, d) in enumerate(self.edges) if d == agent]

    # -- the slot state ---------------------------------------------------------------------------
    @abstractmethod
    def write(self, edge: int, params: torch.Tensor) -> None:
        """Copy ``params`` into the (free) slot of ``edge``; the message becomes fresh."""

    @abstractmethod
    def fresh(self, edge: int) -> bool:
        """Whether ``edge`` holds a message visible to its receiver and not yet read."""

    @abstractmethod
    def free(self, edge: int) -> bool:
        """Whether the sender may write on ``edge`` (its previous message was read, or none exists)."""

    @abstractmethod
    def accumulate(self, edge: int, into: torch.Tensor) -> None:
        """Add the fresh message of ``edge`` into ``into`` and mark it read (the slot becomes free)."""

    # -- liveness (a finished or failed agent is no longer waited for) ---------------------------
    def alive(self, agent: int) -> bool:
        """Whether ``agent`` still takes part; edges to or from a gone agent are not live."""
        return True

    def leave(self, agent: int) -> None:
        """Mark ``agent`` as gone (finished its budget, or failed): peers stop waiting for it."""

    def edge_live(self, edge: int) -> bool:
        src, dst = self.edges[edge]
        return self.alive(src) and self.alive(dst)

    # -- waiting -----------------------------------------------------------------------------------
    def pause(self, waited: float) -> None:
        """Called by a blocked agent between polls; ``waited`` is the time blocked so far (s)."""
        # Back off from a busy poll to 1 ms: on a shared CPU a spinning learner steals its peers' core.
        time.sleep(min(1e-3, 1e-5 + waited / 10))

    def close(self) -> None:
        """Release resources (nothing to do for in-process slots)."""


class InProcessTransport(Transport):
    """Slots as plain tensors in one process: deterministic, for tests and replays.

    Parameters
    ----------
    edges : sequence of (int, int)
        Directed edges ``(src, dst)``.
    dim : int
        Length of a message (the flat parameter vector).
    dtype : torch.dtype
        Message dtype (``torch.float64`` to replay the simulator exactly).
    deliver : {"immediate", "manual"}
        ``immediate``: a write is visible at once (zero delay). ``manual``: a write stays in flight
        until :meth:`deliver` is called for its edge, as the simulator's "arrive" event does.

    Examples
    --------
    >>> t = InProcessTransport([(0, 1)], dim=2, deliver="manual")
    >>> t.write(0, torch.tensor([1.0, 2.0])); t.fresh(0), t.free(0)
    (False, False)
    >>> t.deliver(0); t.fresh(0)
    True
    >>> x = torch.zeros(2); t.accumulate(0, x); x.tolist(), t.free(0)
    ([1.0, 2.0], True)
    """

    def __init__(self, edges: Sequence[Edge], dim: int, dtype: torch.dtype = torch.float32,
                 deliver: str = "immediate"):
        super().__init__(edges)
        if deliver not in ("immediate", "manual"):
            raise ValueError(f"deliver must be 'immediate' or 'manual', got {deliver!r}")
        self.manual = deliver == "manual"
        self.slots = torch.zeros(len(self.edges), int(dim), dtype=dtype)
        self.written = [False] * len(self.edges)  # a message occupies the slot (in flight or visible)
        self.visible = [False] * len(self.edges)
        self.gone: set[int] = set()

    def write(self, edge: int, params: torch.Tensor) -> None:
        if self.written[edge]:
            raise RuntimeError(f"edge {self.edges[edge]}: write into a slot whose message is unread")
        self.slots[edge].copy_(params)
        self.written[edge] = True
        self.visible[edge] = not self.manual

    def deliver(self, edge: int) -> None:
        """Make the in-flight message of ``edge`` visible to its receiver (the "arrive" event)."""
        if not self.written[edge]:
            raise RuntimeError(f"edge {self.edges[edge]}: nothing in flight to deliver")
        self.visible[edge] = True

    def drop(self, edge: int) -> None:
        """Lose the in-flight message of ``edge`` (the "lost" event): the slot becomes free unread."""
        self.written[edge] = self.visible[edge] = False

    def fresh(self, edge: int) -> bool:
        return self.visible[edge]

    def free(self, edge: int) -> bool:
        return not self.written[edge]

    def accumulate(self, edge: int, into: torch.Tensor) -> None:
        if not self.visible[edge]:
            raise RuntimeError(f"edge {self.edges[edge]}: no fresh message to read")
        into.add_(self.slots[edge].to(into.dtype))
        self.written[edge] = self.visible[edge] = False

    def alive(self, agent: int) -> bool:
        return agent not in self.gone

    def leave(self, agent: int) -> None:
        self.gone.add(int(agent))
