"""torch.distributed transport: one process per learner, on any number of machines.

Each learner is one rank. Every pair of ranks that may ever exchange messages (the graph's edges
and every bypass the repair rule can create, :func:`galasim.gossip.repair.possible_edges`) gets
its own two-rank gloo process group, built from a prefix of the shared ``TCPStore``. Pair groups
isolate failures: when a peer dies only the groups it belongs to break (gloo reports "Connection
closed by peer" on those alone, and nothing waits on them), and a restarted peer gets new groups
under a new *incarnation* prefix, which a static world-wide group could not offer.

The GALA slot semantics of :class:`~galasim.gossip.shm.SharedMemoryTransport`, over messages:

* **write** (sender, only into a free slot): ``isend`` a 4-int64 header ``(MAGIC, numel, dtype,
  seq)`` then the payload, and post an ``irecv`` for the receiver's acknowledgement. The slot is
  *occupied* until that acknowledgement arrives, so an unread message is never overwritten.
* **fresh** (receiver): an ``irecv`` for the next header is always posted; once it has arrived and
  is valid, the payload's ``irecv`` is posted; the message is fresh once the payload has arrived.
  A header of the wrong size or dtype raises :class:`MalformedMessage` naming the sending rank,
  before any payload is received into a buffer of the wrong size.
* **accumulate** (receiver): add the payload, ``isend`` the acknowledgement, post the next header
  ``irecv``: reading frees the slot at the writer.

Messages always travel through host memory over gloo, also for learners on a GPU: their
parameters are copied to the host to be sent, and a received message is copied to the device when
it is mixed. NCCL cannot carry these slots. Its point-to-point operations have no tags, and its
kernels block until the matching operation arrives: ungrouped sends and receives between two
ranks deadlock when both send first (NVIDIA/nccl#479). The header receive this transport always
keeps posted would then hold back the sends behind it. NCCL also refuses two ranks on one GPU
("Duplicate GPU detected", ncclInvalidUsage), and GALA's learners share GPUs.

Nothing blocks the learner: gloo's point-to-point ``Work.is_completed()`` only turns true once
``wait()`` has been called, so each pending operation is waited for by a small daemon thread
(:class:`_Completion`, ``wait`` releases the GIL) and the learner polls its flag; the only wait
the learner does is GALA's own (``GossipBuffer.step`` polling :meth:`fresh`). A peer that dies
makes its pending operations fail ("Connection closed by peer"); they then never count as done.
Nothing is unpickled: only tensors travel, and their size and dtype are checked against what this
rank expects.
"""
from __future__ import annotations

import datetime
import threading
from collections.abc import Callable, Sequence

import torch

from galasim.gossip.repair import possible_edges
from galasim.gossip.transport import Edge, Transport

MAGIC = 0x6A1A_0009
TAG_HEADER, TAG_PAYLOAD, TAG_ACK = 1, 2, 3
DTYPE_CODES = {torch.float32: 1, torch.float64: 2, torch.float16: 3, torch.bfloat16: 4}
DTYPE_NAMES = {code: str(dtype).removeprefix("torch.") for dtype, code in DTYPE_CODES.items()}


class MalformedMessage(RuntimeError):
    """A peer sent a message this rank cannot take (wrong size, dtype or header)."""


def pair_prefix(a: int, b: int, inc_a: int, inc_b: int) -> str:
    """Store prefix of the two-rank group of ranks ``a < b`` in incarnations ``inc_a``, ``inc_b``."""
    return f"galasim/pair/{a}-{b}/{inc_a}-{inc_b}/"


class _Completion:
    """Whether a ``Work`` has completed, learnt by a daemon thread blocked in ``work.wait()``."""

    def __init__(self, work, error: Exception | None = None):
        self.work, self.error = work, error
        self.event = threading.Event()
        if work is not None:
            threading.Thread(target=self._wait, daemon=True).start()

    def _wait(self) -> None:
        try:
            self.work.wait()
        except Exception as exc:  # the peer died or the group was aborted: never completes
            self.error = exc
            return
        self.event.set()

    def is_completed(self) -> bool:
        return self.event.is_set()


class _Pair:
    """The two-rank process group of this rank and ``peer``, with this rank's index in it."""

    def __init__(self, store, rank: int, peer: int, inc: dict[int, int], timeout: float):
        import torch.distributed as dist

        a, b = sorted((rank, peer))
        prefix_store = dist.PrefixStore(pair_prefix(a, b, inc[a], inc[b]), store)
        wait = datetime.timedelta(seconds=timeout)
        me = 0 if rank == a else 1
        self.pg = dist.ProcessGroupGloo(prefix_store, me, 2, wait)
        self.me, self.other = me, 1 - me

    def isend(self, tensor: torch.Tensor, tag: int) -> _Completion:
        try:
            return _Completion(self.pg.send([tensor], self.other, tag))
        except RuntimeError as exc:  # the pair is broken (peer died): never completes; the
            return _Completion(None, exc)  # heartbeat timeout removes the peer

    def irecv(self, tensor: torch.Tensor, tag: int) -> _Completion:
        try:
            return _Completion(self.pg.recv([tensor], self.other, tag))
        except RuntimeError as exc:
            return _Completion(None, exc)


class DistTransport(Transport):
    """GALA message slots over torch.distributed point-to-point, for the edges of this rank.

    Parameters
    ----------
    edges : sequence of (int, int)
        The original directed graph over the ranks. The transport's edge ids cover every edge
        the repair rule can create (:func:`~galasim.gossip.repair.possible_edges` with every rank
        crashable), so a :class:`~galasim.gossip.buffer.GossipBuffer` needs no rebuilding when the
        graph is repaired; which of them are live is decided by :meth:`alive` and ``live_edge``.
    rank : int
        This process's rank; only edges into or out of it may be used here.
    dim : int
        Length of a message (the flat parameter vector).
    store : torch.distributed.Store
        The rendezvous store shared by all ranks (``TCPStore``).
    incarnations : dict of int to int
        The incarnation (start count) of every rank; pair groups are named by them.
    dtype
        The dtype of messages (they live in host memory, whatever the parameters' device).
    timeout : float
        Seconds to wait for a peer while building a pair group.
    live_edge : callable, optional
        ``live_edge(edge_id) -> bool``: the current (repaired) topology; default: the original edges.
    peers : iterable of int, optional
        Ranks to connect to now (default: every rank this one may ever exchange with). Pairs are
        built in increasing order of ``(min, max)`` on every rank, so two ranks never wait for
        each other in opposite orders.
    """

    def __init__(self, edges: Sequence[Edge], rank: int, dim: int, store, incarnations: dict[int, int], *,
                 dtype: torch.dtype = torch.float32,
                 timeout: float = 60.0, live_edge: Callable[[int], bool] | None = None,
                 peers=None, connect: bool = True):
        self.original = [(int(s), int(d)) for s, d in edges]
        ranks = {a for e in self.original for a in e}
        super().__init__(possible_edges(self.original, ranks))
        self.rank, self.dim = int(rank), int(dim)
        self.store, self.inc = store, dict(incarnations)
        if dtype not in DTYPE_CODES:
            raise ValueError(f"dtype {dtype} cannot travel; allowed: {', '.join(DTYPE_NAMES.values())}")
        self.dtype, self.timeout = dtype, float(timeout)
        original = set(self.original)
        self.live_edge = live_edge or (lambda e: self.edges[e] in original)
        self.gone: set[int] = set()
        self.pairs: dict[int, _Pair] = {}
        self.neighbours = sorted({a for e in self.edges for a in e if self.rank in e} - {self.rank})
        self.seq = 0
        # Per out-edge: the send works and buffers kept alive until complete, the ack irecv.
        self.sending: dict[int, list] = {}
        self.ack: dict[int, tuple] = {}
        # Per in-edge: (header buffer, header work, payload buffer, payload work or None).
        self.recv: dict[int, list] = {}
        if connect:
            wanted = self.neighbours if peers is None else set(peers) & set(self.neighbours)
            for peer in sorted(wanted):
                self.connect(peer)

    # -- pair groups -----------------------------------------------------------------------------
    def connect(self, peer: int, incarnation: int | None = None) -> None:
        """Build (or, for a restarted ``peer``, rebuild) the pair group; pending messages are dropped."""
        if incarnation is not None:
            self.inc[peer] = int(incarnation)
        for e in self._edges_with(peer):
            self.sending.pop(e, None)
            self.ack.pop(e, None)
            self.recv.pop(e, None)
        self.pairs[peer] = _Pair(self.store, self.rank, peer, self.inc, self.timeout)
        for e in self._edges_with(peer):
            if self.edges[e][1] == self.rank:
                self._post_header(e)

    def disconnect(self, peer: int) -> None:
        """Forget ``peer``'s group (it died): its messages, in flight or unread, are dropped."""
        for e in self._edges_with(peer):
            self.sending.pop(e, None)
            self.ack.pop(e, None)
            self.recv.pop(e, None)
        self.pairs.pop(peer, None)

    def _edges_with(self, peer: int) -> list[int]:
        return [e for e, (s, d) in enumerate(self.edges) if {s, d} == {self.rank, peer}]

    def _mine(self, edge: int, side: int) -> None:
        if self.edges[edge][side] != self.rank:
            role = "sender" if side == 0 else "receiver"
            raise RuntimeError(f"rank {self.rank} is not the {role} of edge {self.edges[edge]}")

    # -- the slot state --------------------------------------------------------------------------
    def write(self, edge: int, params: torch.Tensor) -> None:
        self._mine(edge, 0)
        if not self.free(edge):
            raise RuntimeError(f"edge {self.edges[edge]}: write into a slot whose message is unread")
        peer = self.edges[edge][1]
        pair = self.pairs[peer]
        self.seq += 1
        header = torch.tensor([MAGIC, params.numel(), DTYPE_CODES[params.dtype], self.seq], dtype=torch.int64)
        payload = params.detach().to("cpu", copy=True).reshape(-1)
        # Both buffers are kept referenced until their sends complete (gloo reads them asynchronously).
        self.sending[edge] = [(pair.isend(header, TAG_HEADER), header),
                              (pair.isend(payload, TAG_PAYLOAD), payload)]
        ack = torch.zeros(1, dtype=torch.int64)
        self.ack[edge] = (pair.irecv(ack, TAG_ACK), ack)

    def free(self, edge: int) -> bool:
        self._mine(edge, 0)
        if self.edges[edge][1] not in self.pairs:
            return False
        pending = self.ack.get(edge)
        if pending is not None and not pending[0].is_completed():
            return False
        self.ack.pop(edge, None)
        self.sending[edge] = [(w, b) for w, b in self.sending.get(edge, []) if not w.is_completed()]
        return True

    def fresh(self, edge: int) -> bool:
        self._mine(edge, 1)
        slot = self.recv.get(edge)
        if slot is None:
            return False
        header, hwork, payload, pwork = slot
        if pwork is None:
            if not hwork.is_completed():
                return False
            slot[2] = payload = self._check_header(edge, header)
            slot[3] = pwork = self.pairs[self.edges[edge][0]].irecv(payload, TAG_PAYLOAD)
        return bool(pwork.is_completed())

    def accumulate(self, edge: int, into: torch.Tensor) -> None:
        if not self.fresh(edge):
            raise RuntimeError(f"edge {self.edges[edge]}: no fresh message to read")
        payload = self.recv[edge][2]
        into.add_(payload.to(into.device, into.dtype))
        self._acknowledge(edge)

    def peek(self, edge: int, into: torch.Tensor) -> None:
        """Copy the fresh message of ``edge`` into ``into`` without reading it (a rejoin's copy)."""
        if not self.fresh(edge):
            raise RuntimeError(f"edge {self.edges[edge]}: no fresh message to copy")
        into.copy_(self.recv[edge][2].to(into.device, into.dtype))

    def discard(self, edge: int) -> None:
        """Read and drop a fresh message (a message from a peer detected dead is not mixed)."""
        if self.fresh(edge):
            self._acknowledge(edge)

    def _acknowledge(self, edge: int) -> None:
        pair = self.pairs[self.edges[edge][0]]
        ack = torch.ones(1, dtype=torch.int64)
        self.sending.setdefault(edge, []).append((pair.isend(ack, TAG_ACK), ack))
        self._post_header(edge)

    def _post_header(self, edge: int) -> None:
        header = torch.zeros(4, dtype=torch.int64)
        work = self.pairs[self.edges[edge][0]].irecv(header, TAG_HEADER)
        self.recv[edge] = [header, work, None, None]

    def _check_header(self, edge: int, header: torch.Tensor) -> torch.Tensor:
        magic, numel, code, _ = (int(v) for v in header)
        src = self.edges[edge][0]
        if magic != MAGIC:
            raise MalformedMessage(f"rank {src} sent a message without a galasim header on edge "
                                   f"{src}->{self.rank} (magic {magic:#x}); is it running galasim?")
        if numel != self.dim or code != DTYPE_CODES[self.dtype]:
            got = DTYPE_NAMES.get(code, f"dtype code {code}")
            raise MalformedMessage(
                f"rank {src} sent a message of {numel} {got} values on edge {src}->{self.rank}; rank "
                f"{self.rank} expects {self.dim} {DTYPE_NAMES[DTYPE_CODES[self.dtype]]} values "
                "(same model, --env and --hidden on every rank?)")
        return torch.empty(self.dim, dtype=self.dtype)

    # -- liveness --------------------------------------------------------------------------------
    def alive(self, agent: int) -> bool:
        return agent not in self.gone

    def leave(self, agent: int) -> None:
        self.gone.add(int(agent))

    def edge_live(self, edge: int) -> bool:
        src, dst = self.edges[edge]
        other = dst if src == self.rank else src
        return (self.rank in (src, dst) and other in self.pairs and self.alive(src) and self.alive(dst)
                and self.live_edge(edge))

    def close(self) -> None:
        self.sending.clear()
        self.ack.clear()
        self.recv.clear()
        self.pairs.clear()
