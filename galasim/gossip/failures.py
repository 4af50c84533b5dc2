"""Failed learners: detection through heartbeats in a shared store, repair, rejoin.

Every learner keeps a heartbeat counter in the run's ``TCPStore`` (``galasim/hb/{rank}``) and bumps
it from its loop and while it waits for messages. Every learner also watches the others' counters:
one that has not moved for ``failure_timeout`` seconds of the watcher's own clock (no clock
agreement between machines is needed) is declared dead in the store (``galasim/dead/{rank}/{inc}``),
so all learners agree on it. This covers a killed process and a hung one alike. A learner that
finished its budget says so (``galasim/done/...``) and is no longer waited for, but is not bypassed,
as in the simulator.

Topology: the live edges are :func:`galasim.gossip.repair.repaired_edges` of the original graph
and the dead set -- the same rule as the simulator's ``repair:D``. When an edge appears (a bypass,
or a rejoined agent's original edges) its sender writes its current parameters on it at once;
messages from an agent detected dead are dropped unread.

``--mode async``'s parent process watches too, as an *observer* (it takes no part in the gossip):
it declares dead at once a learner process that exits, and kills one found silent.

A restarted learner (same rank) takes a new *incarnation* (``galasim/inc/{rank}`` is a start
counter): the others see the counter move, treat the old incarnation as dead if they had not yet
detected it, and the rank's original edges come back. It copies the parameters of its
lowest-numbered live in-neighbour (:func:`galasim.gossip.repair.rejoin_source`), which writes them
on the rejoined edge at once.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from galasim.gossip.repair import rejoin_source, repaired_edges
from galasim.gossip.transport import Edge, Transport

PREFIX = "galasim/"


class DeclaredDead(RuntimeError):
    """This learner was silent longer than the failure timeout and the others removed it."""


@dataclass
class Change:
    """What one :meth:`Membership.poll` found."""

    dead: list[int] = field(default_factory=list)      # newly declared dead
    rejoined: list[int] = field(default_factory=list)  # restarted with a new incarnation
    finished: list[int] = field(default_factory=list)  # finished their budget

    def __bool__(self) -> bool:
        return bool(self.dead or self.rejoined or self.finished)


class Membership:
    """Who is alive, as every learner agrees through the store.

    Parameters
    ----------
    store : torch.distributed.Store
        Shared by all learners (a ``TCPStore``; for tests any object with ``add``, ``set``,
        ``get`` and ``check``).
    rank, world : int
        This learner and the number of learners.
    failure_timeout : float
        Seconds without a heartbeat after which a learner is declared dead.
    clock : callable
        Seconds, monotonic (tests pass a fake clock).
    observer : bool
        Watch without taking part (``rank`` is then ignored): ``--mode async``'s parent process,
        which supervises the learners. Its events say ``by: "parent"``.
    """

    def __init__(self, store, rank: int, world: int, failure_timeout: float, clock=time.monotonic,
                 observer: bool = False):
        if not failure_timeout > 0:
            raise ValueError(f"failure_timeout must be > 0 seconds, got {failure_timeout!r}")
        self.observer = bool(observer)
        self.store, self.rank, self.world = store, -1 if observer else int(rank), int(world)
        self.timeout, self.clock = float(failure_timeout), clock
        if self.observer:
            self.incarnation, self.restarted = 0, False
        else:
            self.incarnation = int(store.add(f"{PREFIX}inc/{self.rank}", 1))
            self.restarted = self.incarnation > 1
            store.add(f"{PREFIX}hb/{self.rank}", 1)
        # A wall-clock origin shared through the store: event times are comparable across learners.
        store.add(f"{PREFIX}t0_set", 0)
        if store.add(f"{PREFIX}t0_set", 1) == 1:
            store.set(f"{PREFIX}t0", repr(time.time()))
        self.t0 = float(store.get(f"{PREFIX}t0").decode()) if store.check([f"{PREFIX}t0"]) else time.time()
        self.inc: dict[int, int] = {}
        self._started = False
        self.dead: set[int] = set()
        self.done: set[int] = set()
        self.seen: dict[int, tuple[int, float]] = {}  # rank -> (heartbeat value, when it last moved)
        self.events: list[dict] = []
        self.beat_every = min(0.25, self.timeout / 8)
        self.poll_every = min(0.25, self.timeout / 8)
        self._last_beat = self._last_poll = -float("inf")

    def now(self) -> float:
        """Seconds since the run started (the store's shared origin)."""
        return time.time() - self.t0

    def wait_for_all(self, timeout: float) -> dict[int, int]:
        """Block until every rank has started once; returns the incarnations."""
        start = self.clock()
        while not self.all_started():
            if self.clock() - start > timeout:
                missing = [r for r in range(self.world) if int(self.store.add(f"{PREFIX}inc/{r}", 0)) < 1]
                raise TimeoutError(f"rank(s) {', '.join(map(str, missing))} did not start within {timeout:g} s")
            time.sleep(0.05)
        return dict(self.inc)

    def all_started(self) -> bool:
        """Whether every rank has started once (without blocking); if so, read who is dead or done."""
        if self._started:
            return True
        inc = {r: int(self.store.add(f"{PREFIX}inc/{r}", 0)) for r in range(self.world)}
        if not all(v >= 1 for v in inc.values()):
            return False
        self.inc, self._started = inc, True
        self.inc[self.rank] = self.incarnation
        for r in range(self.world):
            if r != self.rank:
                if self._flag("dead", r):
                    self.dead.add(r)
                elif self._flag("done", r):
                    self.done.add(r)
        if self.restarted:
            self._event("rejoin", self.rank)
        return True

    def _flag(self, kind: str, r: int) -> bool:
        return bool(self.store.check([f"{PREFIX}{kind}/{r}/{self.inc[r]}"]))

    def _event(self, kind: str, agent: int, **extra) -> None:
        by = "parent" if self.observer else self.rank
        self.events.append({"time": self.now(), "event": kind, "agent": agent, "by": by, **extra})

    def declare_dead(self, r: int, reason: str) -> None:
        """Declare rank ``r`` (its current incarnation) dead in the store, for every learner."""
        if r not in self.inc:  # not seen yet (it may have died before it started: then start it once)
            inc = int(self.store.add(f"{PREFIX}inc/{r}", 0))
            self.inc[r] = inc if inc >= 1 else int(self.store.add(f"{PREFIX}inc/{r}", 1))
        by = "the parent" if self.observer else f"rank {self.rank}"
        self.store.set(f"{PREFIX}dead/{r}/{self.inc[r]}", f"{by}: {reason}")  # read by the others
        self.dead.add(r)
        self.done.discard(r)
        self._event("dead", r, reason=reason)

    def beat(self, force: bool = False) -> None:
        """Bump this learner's heartbeat (rate-limited)."""
        now = self.clock()
        if force or now - self._last_beat >= self.beat_every:
            self.store.add(f"{PREFIX}hb/{self.rank}", 1)
            self._last_beat = now

    def finish(self) -> None:
        """This learner finished its budget: peers stop waiting for it (it is not bypassed)."""
        self.store.set(f"{PREFIX}done/{self.rank}/{self.incarnation}", "1")

    def poll(self, force: bool = False) -> Change:
        """Read the others' state; declare dead those silent for longer than the timeout."""
        change = Change()
        now = self.clock()
        if not force and now - self._last_poll < self.poll_every:
            return change
        self._last_poll = now
        if not self.observer and self._flag("dead", self.rank):
            raise DeclaredDead(f"rank {self.rank} was declared dead by its peers (no heartbeat for "
                               f"{self.timeout:g} s); restart it to rejoin the run")
        for r in range(self.world):
            if r == self.rank:
                continue
            inc = int(self.store.add(f"{PREFIX}inc/{r}", 0))
            if inc != self.inc.get(r):  # restarted: its old incarnation is gone, the new one joins
                if r not in self.dead:
                    self._event("dead", r, reason="restarted before it was detected")
                self.inc[r] = inc
                self.dead.discard(r)
                self.done.discard(r)
                self.seen.pop(r, None)
                change.rejoined.append(r)
                self._event("rejoin", r)
                continue
            if r in self.dead or r in self.done:
                continue
            if self._flag("done", r):
                self.done.add(r)
                change.finished.append(r)
                continue
            if self._flag("dead", r):
                self.dead.add(r)
                change.dead.append(r)
                said = self.store.get(f"{PREFIX}dead/{r}/{inc}").decode(errors="replace")
                self._event("dead", r, reason=f"declared by {said}")
                continue
            hb = int(self.store.add(f"{PREFIX}hb/{r}", 0))
            last = self.seen.get(r)
            if last is None or last[0] != hb:
                self.seen[r] = (hb, now)
            elif now - last[1] > self.timeout:
                self.declare_dead(r, f"no heartbeat for {now - last[1]:.3g} s")
                change.dead.append(r)
        return change


class RepairedTransport(Transport):
    """Any transport whose live edges follow the repair rule and the membership.

    The inner transport holds every edge the rule can create (``possible_edges``); this wrapper
    says which are live, drops messages from agents detected dead, reconnects to restarted ones
    (:meth:`DistTransport.connect`) and writes the current parameters on every edge that appears.
    It polls the membership while its agent waits for messages (:meth:`pause`) and when the
    learner calls :meth:`poll` between updates, so a dead peer never blocks anyone for longer
    than the failure timeout.
    """

    def __init__(self, inner: Transport, original: Sequence[Edge], membership: Membership):
        self.inner, self.membership = inner, membership
        self.edges, self.agents = inner.edges, inner.agents
        self.original = [(int(s), int(d)) for s, d in original]
        self.rank = membership.rank
        self.params: torch.Tensor | None = None
        self.active = set(repaired_edges(self.original, membership.dead))
        self._live_before = {e for e in self.out_edges(self.rank) if self.edge_live(e)}

    def bind(self, params: torch.Tensor) -> None:
        """The learner's parameters: written at once on every edge that appears."""
        self.params = params

    # -- delegated slot state ----------------------------------------------------------------------
    def write(self, edge, params):
        self.inner.write(edge, params)

    def fresh(self, edge):
        return self.edge_live(edge) and self.inner.fresh(edge)

    def free(self, edge):
        return self.inner.free(edge)

    def accumulate(self, edge, into):
        self.inner.accumulate(edge, into)

    def alive(self, agent):
        m = self.membership
        return agent not in m.dead and agent not in m.done and self.inner.alive(agent)

    def leave(self, agent):
        self.inner.leave(agent)
        if agent == self.rank:
            self.membership.finish()

    def edge_live(self, edge):
        src, dst = self.edges[edge]
        return (src, dst) in self.active and self.alive(src) and self.alive(dst) and self.inner.edge_live(edge)

    def pause(self, waited):
        self.poll()
        self.inner.pause(waited)

    def close(self):
        self.inner.close()

    # -- failures ----------------------------------------------------------------------------------
    def poll(self) -> Change:
        """Heartbeat, read the membership, apply the repair rule to what changed."""
        m = self.membership
        m.beat()
        change = m.poll()
        if not change:
            return change
        for r in change.dead:
            self._drop_from(r)
        for r in sorted(change.rejoined):
            if hasattr(self.inner, "connect"):  # torch.distributed: drop the old incarnation's group,
                self._drop_from(r)              # build one for the new incarnation
                self.inner.connect(r, m.inc[r])
            # Shared memory: a slot cannot tell the incarnations apart, and what it holds now may be
            # the new incarnation's first message; dropping it while its writer waits for this
            # learner's answer deadlocked a ring. The old incarnation's messages were dropped when
            # it was detected dead (if it restarted before that, its last message is mixed once).
        before = self.active
        self.active = set(repaired_edges(self.original, m.dead))
        added, removed = sorted(self.active - before), sorted(before - self.active)
        if added or removed:
            m._event("repair", self.rank, added=[list(e) for e in added if self.rank in e],
                     removed=[list(e) for e in removed if self.rank in e])
        self.write_new_edges()
        return change

    def write_new_edges(self) -> None:
        """The rule's "at once": write the current parameters on every out-edge that just appeared."""
        live = {e for e in self.out_edges(self.rank) if self.edge_live(e)}
        if self.params is not None:
            for e in sorted(live - self._live_before):
                if self.inner.free(e):
                    self.inner.write(e, self.params)
        self._live_before = live

    def _drop_from(self, agent: int) -> None:
        if hasattr(self.inner, "disconnect"):
            self.inner.disconnect(agent)
            return
        scratch = None
        for e in self.in_edges(self.rank):
            if self.edges[e][0] == agent and self.inner.fresh(e):
                if scratch is None:
                    scratch = torch.zeros_like(self.params) if self.params is not None else None
                self.inner.accumulate(e, scratch)  # read and thrown away: frees the slot

    def rejoin(self, params: torch.Tensor, timeout: float) -> int | None:
        """A restarted learner: copy the parameters of its lowest-numbered live in-neighbour.

        Returns that neighbour's rank, or ``None`` when none is alive (the learner keeps its own).
        """
        m = self.membership
        start = time.monotonic()
        while True:
            self.poll()
            alive = {r for r in range(m.world) if r not in m.dead and r not in m.done}
            src = rejoin_source([u for u, v in self.original if v == self.rank], alive)
            if src is None:
                return None
            edge = self.edges.index((src, self.rank))
            if self.inner.fresh(edge):
                # A copy, not a read: the message stays fresh and the first mix takes it as usual
                # (mixing identical parameters changes nothing).
                with torch.no_grad():
                    if hasattr(self.inner, "peek"):
                        self.inner.peek(edge, params)
                    else:
                        params.copy_(self.inner.slots[edge])
                m._event("rejoin-copy", self.rank, source=src)
                return src
            if time.monotonic() - start > timeout:
                raise TimeoutError(f"rank {self.rank} rejoining: no parameters from rank {src} within {timeout:g} s")
            m.beat()
            time.sleep(0.01)


def fault_log(events: list[dict]) -> list[str]:
    """One line per fault event, in time order (repairs left out; several learners reporting the
    same death within a second count once).

    Examples
    --------
    >>> fault_log([{"time": 5.0, "event": "dead", "agent": 2, "by": "parent",
    ...             "reason": "killed by signal SIGKILL"}])
    ['t=5 s agent 2 dead (seen by the parent: killed by signal SIGKILL)']
    """
    seen, log = set(), []
    for e in sorted(events, key=lambda e: e["time"]):
        key = (e["event"], e["agent"], round(e["time"], 0))
        if e["event"] == "repair" or key in seen:
            continue
        seen.add(key)
        by = "the parent" if e["by"] == "parent" else f"rank {e['by']}"
        log.append(f"t={e['time']:.3g} s agent {e['agent']} {e['event']} (seen by {by}"
                   + (f": {e['reason']}" if e.get("reason") else "")
                   + (f", copied rank {e['source']}" if "source" in e else "") + ")")
    return log


def interruptions(events: list[dict], end: float) -> tuple[list[str], float]:
    """The ε-ball's interrupted assumptions from fault events: one line per down interval and the
    total time with some agent down (``end``: the run's length in the events' clock).

    Examples
    --------
    >>> ev = [{"time": 5.0, "event": "dead", "agent": 2}, {"time": 9.0, "event": "rejoin", "agent": 2}]
    >>> interruptions(ev, 20.0)
    (['agent 2 down (detected at t=5 s) until its rejoin at t=9 s (4 s)'], 4.0)
    """
    lines, intervals = [], []
    down: dict[int, float] = {}
    for ev in sorted(events, key=lambda e: e["time"]):
        a = ev["agent"]
        if ev["event"] == "dead" and a not in down:
            down[a] = ev["time"]
        elif ev["event"] == "rejoin" and a in down:
            t = down.pop(a)
            intervals.append((t, ev["time"]))
            lines.append(f"agent {a} down (detected at t={t:.3g} s) until its rejoin at t={ev['time']:.3g} s "
                         f"({ev['time'] - t:.3g} s)")
    for a, t in sorted(down.items()):
        intervals.append((t, end))
        lines.append(f"agent {a} down from t={t:.3g} s (detected) to the end at t={end:.3g} s ({end - t:.3g} s)")
    # total measure of the union of the intervals
    total, cur_s, cur_e = 0.0, None, None
    for s, e in sorted(intervals):
        if cur_e is None or s > cur_e:
            total += (cur_e - cur_s) if cur_e is not None else 0.0
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    total += (cur_e - cur_s) if cur_e is not None else 0.0
    return lines, total
