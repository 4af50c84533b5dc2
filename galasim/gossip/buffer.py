"""GALA's send/receive rules for one agent, over any :class:`~galasim.gossip.transport.Transport`.

After each local update ``x <- x + delta`` agent *i* calls :meth:`GossipBuffer.step` (or, to be
stepped from an event loop without blocking, :meth:`GossipBuffer.after_update` then
:meth:`GossipBuffer.try_mix`):

1. **Send** (reference rule, facebookresearch/gala ``write_message``): if every live out-edge's
   slot is free (its previous message was read), write ``x`` into each; otherwise skip every write
   this iteration, so an unread message is never overwritten.
2. **Receive** (``aggregate_message``): if every live in-edge holds a fresh message, mix
   ``x <- (x + sum of the m fresh messages) / (m + 1)``, mark them read and reset the staleness
   counter; else if the counter has reached ``sync_freq``, block until every live in-peer's message
   is there, then mix; else increment the counter and go on.

The uniform pull weight ``1/(m+1)`` equals the reference's ``x/(p+1)`` sender scaling on regular
graphs. ``sync_freq=0`` always waits (synchronous gossip), ``math.inf`` never waits.

**galasim's extension** ``resend=True`` (not the reference protocol, off by default): after each
update write on every live out-edge whose slot is free (instead of all or none), and while blocked
write the current parameters on each out-edge whose write was skipped as soon as its slot frees.
The reference rule can deadlock on multi-peer graphs with a finite ``sync_freq`` (two agents each
blocked for a message the other skipped); with reliable delivery the extension cannot: if every
agent were blocked, each would miss a message from a blocked in-peer that *did* write it (a skipped
write is re-sent as soon as the slot frees), so the receiver consumed it and updated since, i.e.
updated after that peer's last update; following the missing messages round a cycle of agents
would make each last update strictly later than itself. Either way a blocking wait never
hangs forever: after ``timeout`` seconds it raises :class:`GossipTimeout` naming the agents waited for.
"""
from __future__ import annotations

import enum
import math
import time
from dataclasses import dataclass

import torch

from galasim.gossip.transport import Transport

DEFAULT_TIMEOUT = 600.0


class Outcome(enum.Enum):
    """What the receive rule did after an update."""

    MIXED = "mixed"      # every live in-peer had a fresh message: mixed
    SKIPPED = "skipped"  # not all fresh, staleness still tolerable: went on without mixing
    WAIT = "wait"        # staleness bound reached: must block until the messages are there


class GossipTimeout(TimeoutError):
    """A blocked agent waited longer than its timeout for its in-peers' messages."""

    def __init__(self, agent: int, peers: list[int], waited: float, sync_freq: float, resend: bool):
        self.agent, self.peers, self.waited = agent, peers, waited
        hint = "" if resend else (
            "; the reference GALA protocol can deadlock on multi-peer graphs with a finite sync_freq "
            "(try sync_freq=inf or galasim's resend extension)")
        super().__init__(
            f"agent {agent} waited {waited:.3g} s for messages from agent(s) "
            f"{', '.join(map(str, peers))} (sync_freq={sync_freq}){hint}")


@dataclass
class GossipStats:
    """Counters of one agent's gossip, in the simulator's vocabulary."""

    iterations: int = 0
    mixes: int = 0
    messages_sent: int = 0
    messages_skipped: int = 0
    waits: int = 0
    wait_seconds: float = 0.0
    staleness: int = 0      # iterations since the last mix (the reference's sync_list[rank])
    max_staleness: int = 0  # its maximum so far: the observed staleness


class GossipBuffer:
    """GALA's rules for agent ``agent`` over ``transport``.

    Parameters
    ----------
    agent : int
        This agent's id in the transport's edge list.
    transport : Transport
        Where messages live (in-process, shared memory...).
    sync_freq : int or math.inf
        Staleness bound: iterations without mixing before the agent blocks (0: always wait).
    resend : bool
        galasim's extension (see the module docstring); ``False`` is the reference protocol.
    timeout : float
        Seconds a blocking wait may last before :class:`GossipTimeout` is raised.

    Examples
    --------
    Two agents on a directed 2-cycle, zero delay:

    >>> from galasim.gossip.transport import InProcessTransport
    >>> t = InProcessTransport([(0, 1), (1, 0)], dim=1)
    >>> a, b = GossipBuffer(0, t, sync_freq=1), GossipBuffer(1, t, sync_freq=1)
    >>> x0, x1 = torch.tensor([0.0]), torch.tensor([4.0])
    >>> a.after_update(x0)          # writes x0 to agent 1; nothing fresh from 1 yet
    <Outcome.SKIPPED: 'skipped'>
    >>> b.after_update(x1), x1.item()  # writes x1, mixes x0: (4 + 0) / 2
    (<Outcome.MIXED: 'mixed'>, 2.0)
    """

    def __init__(self, agent: int, transport: Transport, sync_freq: float = 0, *,
                 resend: bool = False, timeout: float = DEFAULT_TIMEOUT):
        if not (sync_freq == math.inf or (float(sync_freq).is_integer() and sync_freq >= 0)):
            raise ValueError(f"sync_freq must be an integer >= 0 or inf, got {sync_freq!r}")
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
        self.agent = int(agent)
        self.transport = transport
        self.sync_freq = sync_freq
        self.resend = bool(resend)
        self.timeout = float(timeout)
        self.out_edges = transport.out_edges(self.agent)
        self.in_edges = transport.in_edges(self.agent)
        self.owed: list[int] = []  # resend: out-edges whose write this iteration skipped
        self.waiting = False
        self.stats = GossipStats()

    # -- the rules ---------------------------------------------------------------------------------
    def send(self, params: torch.Tensor) -> list[int]:
        """Apply the send rule with ``params`` (after the local update); returns the edges written."""
        t = self.transport
        live = [e for e in self.out_edges if t.edge_live(e)]
        free = [e for e in live if t.free(e)]
        if self.resend:
            write, self.owed = free, [e for e in live if e not in free]
        else:
            write = free if len(free) == len(live) else []
        for e in write:
            t.write(e, params)
        self.stats.messages_sent += len(write)
        self.stats.messages_skipped += len(live) - len(write)
        return write

    def after_update(self, params: torch.Tensor) -> Outcome:
        """Send, then the non-blocking part of the receive rule. Mixes into ``params`` in place.

        Returns :attr:`Outcome.WAIT` when the staleness bound is reached and a message is missing:
        the caller must then call :meth:`try_mix` until it returns True (or use :meth:`step`).
        """
        self.stats.iterations += 1
        self.send(params)
        if self._ready():
            self._mix(params)
            return Outcome.MIXED
        if self.stats.staleness >= self.sync_freq:
            self.waiting = True
            self.stats.waits += 1
            return Outcome.WAIT
        self.stats.staleness += 1
        self.stats.max_staleness = max(self.stats.max_staleness, self.stats.staleness)
        return Outcome.SKIPPED

    def try_mix(self, params: torch.Tensor) -> bool:
        """While waiting: serve owed writes (resend) and mix if every live in-peer's message is there."""
        if not self.waiting:
            raise RuntimeError(f"agent {self.agent}: try_mix called while not waiting")
        if self.owed:
            t = self.transport
            done = [e for e in self.owed if t.edge_live(e) and t.free(e)]
            for e in done:
                t.write(e, params)
            self.stats.messages_sent += len(done)
            self.owed = [e for e in self.owed if e not in done and t.edge_live(e)]
        if not self._ready():
            return False
        self._mix(params)
        return True

    def step(self, params: torch.Tensor) -> Outcome:
        """:meth:`after_update`, blocking (at most ``timeout`` s) when the staleness bound is reached."""
        outcome = self.after_update(params)
        if outcome is not Outcome.WAIT:
            return outcome
        start = time.perf_counter()
        while not self.try_mix(params):
            waited = time.perf_counter() - start
            if waited > self.timeout:
                raise GossipTimeout(self.agent, self.missing(), waited, self.sync_freq, self.resend)
            self.transport.pause(waited)
        self.stats.wait_seconds += time.perf_counter() - start
        return outcome

    def missing(self) -> list[int]:
        """Live in-peers whose fresh message is not there yet."""
        t = self.transport
        return [t.edges[e][0] for e in self.in_edges if t.edge_live(e) and not t.fresh(e)]

    # -- internals ---------------------------------------------------------------------------------
    def _ready(self) -> bool:
        t = self.transport
        return all(t.fresh(e) for e in self.in_edges if t.edge_live(e))

    def _mix(self, params: torch.Tensor) -> None:
        # Every fresh message is mixed, also a departed peer's last one: it is valid information and
        # the simulator's "mix" event does the same.
        t = self.transport
        fresh = [e for e in self.in_edges if t.fresh(e)]
        if fresh:
            with torch.no_grad():
                for e in fresh:
                    t.accumulate(e, params)
                params.div_(len(fresh) + 1)
        self.waiting = False
        self.owed = []
        self.stats.mixes += 1
        self.stats.staleness = 0
