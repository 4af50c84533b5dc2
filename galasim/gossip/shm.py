"""Shared-memory transport: one process per learner on one machine, CPU or one CUDA device.

Each directed edge has a message slot (a flat tensor in shared memory, or on a CUDA device shared
by several processes through CUDA IPC, as facebookresearch/gala's ``GossipBuffer`` does) and two
sequence counters in CPU shared memory: ``written`` (bumped by the sender after its copy is complete)
and ``read`` (bumped by the receiver after it has added the message into its parameters). The slot
is fresh when ``written > read`` and free when ``written == read``. Single writer, single reader,
and the writer only writes into a free slot: no lock is needed. On CUDA the copy is synchronised
before a counter moves, so a peer never sees a counter ahead of the data.

The transport object is created in the parent process and passed to ``torch.multiprocessing``
children, which share its tensors (never copy them).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from galasim.gossip.transport import Edge, Transport

WRITTEN, READ = 0, 1


class SharedMemoryTransport(Transport):
    """Message slots in shared memory for learners in separate processes.

    Parameters
    ----------
    edges : sequence of (int, int)
        Directed edges ``(src, dst)``.
    dim : int
        Length of a message (the flat parameter vector).
    device : str or torch.device
        ``"cpu"`` (shared memory) or a CUDA device shared by all learners (CUDA IPC).
    dtype : torch.dtype
        Message dtype, the learners' parameter dtype.

    Examples
    --------
    >>> t = SharedMemoryTransport([(0, 1), (1, 0)], dim=3)
    >>> t.free(0), t.fresh(0)
    (True, False)
    >>> t.write(0, torch.ones(3)); t.fresh(0), t.free(0)
    (True, False)
    >>> x = torch.zeros(3); t.accumulate(0, x); x.tolist(), t.free(0)
    ([1.0, 1.0, 1.0], True)
    """

    def __init__(self, edges: Sequence[Edge], dim: int, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32):
        super().__init__(edges)
        self.device = torch.device(device)
        self.slots = torch.zeros(len(self.edges), int(dim), dtype=dtype, device=self.device)
        if self.device.type == "cpu":
            self.slots.share_memory_()
        # Counters stay in CPU shared memory: reading one must not launch a CUDA kernel.
        self.seq = torch.zeros(len(self.edges), 2, dtype=torch.int64).share_memory_()
        self.gone = torch.zeros(max(self.agents, 1), dtype=torch.bool).share_memory_()

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.current_stream(self.device).synchronize()

    def write(self, edge: int, params: torch.Tensor) -> None:
        self.slots[edge].copy_(params, non_blocking=True)
        self._sync()
        self.seq[edge, WRITTEN] += 1

    def fresh(self, edge: int) -> bool:
        return bool(self.seq[edge, WRITTEN] > self.seq[edge, READ])

    def free(self, edge: int) -> bool:
        return bool(self.seq[edge, WRITTEN] == self.seq[edge, READ])

    def accumulate(self, edge: int, into: torch.Tensor) -> None:
        into.add_(self.slots[edge].to(into.device, into.dtype, non_blocking=True))
        self._sync()
        self.seq[edge, READ] += 1

    def alive(self, agent: int) -> bool:
        return not bool(self.gone[agent])

    def leave(self, agent: int) -> None:
        self.gone[agent] = True
