"""Pure-Python reference simulator: the test oracle and the speed baseline.

It implements exactly the semantics of the Cython scheduler (``ext/_scheduler.pyx``), statement for
statement and with the same random streams (:mod:`galasim.sim.rng`), but with ``heapq`` and Python
objects. Keep the two in step: every rule here has its twin there, in the same order, which is what
lets the differential tests demand agreement to 1e-12.
"""
from __future__ import annotations

import heapq
import math
import time

import numpy as np

from galasim.gossip import PUSH_SUM
from galasim.gossip import repair as repair_rule
from galasim.sim import liveness, rng
from galasim.sim.certificate import EXACT_AGENTS, PiecewiseCertificate, seqsum
from galasim.sim.events import LOG_DTYPE, ARRIVE, CRASH, LINK, LOST, MIX, REJOIN, REPAIR, UPDATE, WRITE
from galasim.sim.liveness import ARRIVED, BLOCKED, CRASHED, EMPTY, IN_FLIGHT, LOSING, RUNNING
from galasim.sim.models import AWAY_FROM_MEAN, CALLBACK, EXPONENTIAL, QUADRATIC, RANDOM, callback_delta
from galasim.sim.result import diameter, diameter_policy
from galasim.sim.spec import FAULT_CRASH, FAULT_REJOIN, EngineSpec

EV_UPDATE, EV_ARRIVAL, EV_LOST, EV_CRASH, EV_LINK, EV_DETECT, EV_REJOIN = range(7)
FL_CRASH, FL_DETECT, FL_REJOIN = range(3)  # kinds of the fault log, as in ext/_scheduler.pyx
CHECK_WORK = 1 << 23  # work units between two liveness checks, as in the Cython loop


class ReferenceEngine:
    """The reference twin of ``galasim._scheduler.Engine``: same constructor, same ``run()``."""

    def __init__(self, spec: EngineSpec):
        self.s = spec
        n, d, E = spec.n, spec.dim, spec.edges
        self.n, self.d, self.E = n, d, E
        self.step = spec.step
        self.period = spec.active.shape[0]
        self.compute_keys = [rng.stream_key(spec.seed, rng.COMPUTE, i) for i in range(n)]
        self.update_keys = [rng.stream_key(spec.seed, rng.UPDATE, i) for i in range(n)]
        self.delay_keys = [rng.stream_key(spec.seed, rng.DELAY, e) for e in range(E)]
        self.drop_keys = [rng.stream_key(spec.seed, rng.DROP, e) for e in range(E)]
        self.crash_keys = [rng.stream_key(spec.seed, rng.CRASH, i) for i in range(n)]
        self.uptime_mean = 1.0 / spec.crash_rate if spec.crash_rate > 0 else 0.0
        self.orig_pairs = [(int(u), int(v)) for u, v, on in zip(spec.edge_src, spec.edge_dst, spec.edge_on) if on]
        self.edge_id = {(int(u), int(v)): e for e, (u, v) in enumerate(zip(spec.edge_src, spec.edge_dst))}
        self.in_edges = [range(spec.in_indptr[i], spec.in_indptr[i + 1]) for i in range(n)]
        self.out_edges = [
            [int(e) for e in spec.out_edges[spec.out_indptr[j]: spec.out_indptr[j + 1]]] for j in range(n)
        ]
        self.src = [int(v) for v in spec.edge_src]
        self.dst = [int(v) for v in spec.edge_dst]

        self.x = np.zeros((n, d))
        self.payload = np.zeros((E, d))
        self.w = np.ones(n)
        self.acc_x = np.zeros((n, d))
        self.acc_w = np.zeros(n)
        self.injected_x = np.zeros(d)
        self.k = [0] * n
        self.stale = [0] * n
        self.write_k = [0] * E
        self.seq_e = [0] * E
        # Plain lists, not arrays: element access is the reference's hot path (it is the speed
        # baseline of `galasim bench sim`, so it should be fair Python).
        self.status = [RUNNING] * n
        self.slot = [EMPTY] * E
        self.owed = [0] * E
        self.removed = [0] * E
        self.edge_on = [int(v) for v in spec.edge_on]
        self.fresh = [0] * E
        self.gone = [0] * n
        self.detected = [0] * n
        self.awaits = [0] * n
        self.rc_pending = [0] * n
        self.life = [0] * n
        self.crash_epoch = [0] * n
        self.rc_count = [0] * n
        self.pending_faults = self.awaiting = 0
        self.flog: list[tuple[float, int, int, int]] = []
        self.last_update_time = np.zeros(n)
        self.actions = self.tau_actions = self.max_fresh = 0
        self.last_action = [0] * n
        self.snap = [0] * E
        self.last_use = np.zeros(E, dtype=np.int64)
        self.max_avoid = np.zeros(E, dtype=np.int64)
        self.work, self.next_check = 0, CHECK_WORK
        self.stopped = self.diagnosis = ""
        self.check_k = None
        self.log: list[tuple[float, int, int, int]] = []
        self.heap: list[tuple[float, int, int, int]] = []
        self.next_seq = 0
        self.now = 0.0
        self.dirty = self.finished = self.deadlock = False
        self.live, self.reached = n, 0
        self.pool: dict[int, tuple[np.ndarray, float, int]] = {}
        self.pool_free: list[int] = []
        self.pool_cap = 0
        self.events = self.sent = self.skipped = self.dropped = 0
        self.max_stale = self.max_age = 0
        self.sup_distance = self.max_update_norm = self.lost_w = 0.0

        self.certificate = bool(spec.certificate) and spec.protocol != PUSH_SUM
        if self.certificate:
            self.prod = np.eye(n + E)
            self.g = np.zeros(n + E)
            self.piece_start_k = [0] * n
            # certificate 2 ("exact"): the window of exact columns; 1: the Dobrushin pieces alone
            self.certifier = PiecewiseCertificate(n + E, agents=n, columns=None if spec.certificate == 2 else 0)
            self.piece = self.certifier.piece
            self.win = self.certifier.window
        self.K = 0  # columns in the certificate's window (certificate.ColumnWindow)
        self.dm_l1 = 0.0
        self.wops = 0  # window row changes since the last re-centring
        self.piece_count = 0
        self.close_pending = False
        self.cert_D = self.gmax = self.cert_sup = 0.0
        self.samples = max(2, spec.samples)
        self.traj: list[list[float]] = []
        self.obs_count, self.stride = 0, 1

    # ---------------------------------------------------------------- helpers

    def _push(self, t: float, kind: int, target: int) -> None:
        heapq.heappush(self.heap, (t, self.next_seq, kind, target))
        self.next_seq += 1

    def _log(self, kind: int, agent: int, edge: int) -> None:
        if self.s.record_events:
            self.log.append((self.now, kind, agent, edge))

    def _act(self, i: int) -> None:
        self.actions += 1
        self.last_action[i] = self.actions

    def _flog(self, kind: int, agent: int, other: int) -> None:
        self.flog.append((self.now, kind, agent, other))

    def _edge_live(self, e: int, t: int) -> bool:
        return bool(self.s.active[t % self.period, e]) and not self.removed[e] and bool(self.edge_on[e]) \
            and not self.gone[self.dst[e]]

    def _can_write(self, j: int, t: int) -> bool:
        return all(self.slot[e] == EMPTY for e in self.out_edges[j] if self._edge_live(e, t))

    def _resume(self, i: int) -> None:
        if self.status[i] == CRASHED:
            return
        self.status[i] = RUNNING
        code, p1, p2 = self.s.compute
        c = self.s.agent_factor[i] * rng.sample(code, p1, p2, self.compute_keys[i], self.k[i])
        self._push(self.now + c, EV_UPDATE, self.life[i] * self.n + i)

    # ---------------------------------------------------------------- GALA

    def _write_edge(self, j: int, e: int) -> None:
        code, p1, p2 = self.s.delay
        self.payload[e] = self.x[j]
        self.owed[e] = 0
        self.write_k[e] = self.k[self.dst[e]]
        self.snap[e] = self.last_action[j]
        delay = self.s.edge_factor[e] * rng.sample(code, p1, p2, self.delay_keys[e], self.seq_e[e])
        lost = self.s.drop > 0 and rng.uniform(self.drop_keys[e], self.seq_e[e]) < self.s.drop
        self.slot[e] = LOSING if lost else IN_FLIGHT
        self.seq_e[e] += 1
        self.sent += 1
        self.events += 1
        self._log(WRITE, j, e)
        if self.certificate:
            self.prod[self.n + e] = self.prod[j]
            self.g[self.n + e] = self.g[j]
            self.win.C[self.n + e, :self.K] = self.win.C[j, :self.K]
        if lost:
            self.dropped += 1
            self._push(self.now + delay, EV_LOST, e)
        else:
            self._push(self.now + delay, EV_ARRIVAL, e)

    def _serve_owed(self, j: int) -> None:
        t = self.k[j] - 1
        for e in self.out_edges[j]:
            if self.owed[e] and self.slot[e] == EMPTY and self._edge_live(e, t):
                self._write_edge(j, e)

    def _ready(self, i: int) -> bool:
        has_live = any_arrived = False
        for e in self.in_edges[i]:
            if self.slot[e] == ARRIVED:
                any_arrived = True
                continue
            if self.removed[e] or not self.edge_on[e] or self.gone[self.src[e]]:
                continue
            has_live = True
            if not self.s.mix_any:
                return False
        return (any_arrived or not has_live) if self.s.mix_any else True

    def _slot_freed(self, e: int) -> None:
        j = self.src[e]
        if self.status[j] == BLOCKED and self.owed[e] and self._edge_live(e, self.k[j] - 1):
            self._write_edge(j, e)

    def _mix(self, i: int) -> None:
        fresh = [e for e in self.in_edges[i] if self.slot[e] == ARRIVED]
        self.stale[i] = 0
        if not fresh:
            return
        self._act(i)
        self.max_fresh = max(self.max_fresh, len(fresh))
        for e in fresh:
            self.x[i] += self.payload[e]
        inv = 1.0 / (len(fresh) + 1)
        self.x[i] *= inv
        if self.certificate:
            for e in fresh:
                self.prod[i] += self.prod[self.n + e]
                self.g[i] += self.g[self.n + e]
            self.prod[i] *= inv
            self.g[i] *= inv
            row = self.win.C[i, :self.K]
            old = row.copy()
            for e in fresh:
                row += self.win.C[self.n + e, :self.K]
            row *= inv
            self._column_row_changed(i, old)
        for e in fresh:
            self.slot[e] = EMPTY
            self.max_age = max(self.max_age, self.k[i] - self.write_k[e])
            self.tau_actions = max(self.tau_actions, self.actions - self.snap[e])
            self.max_avoid[e] = max(self.max_avoid[e], self.actions - self.last_use[e] - 1)
            self.last_use[e] = self.actions
        self.events += 1
        self._log(MIX, i, -1)
        self.dirty = True
        for e in self.in_edges[i]:
            if self.slot[e] == EMPTY:
                self._slot_freed(e)

    def _wake(self, r: int) -> None:
        if self.status[r] == BLOCKED and self._ready(r):
            self._mix(r)
            self._resume(r)

    def _arrival(self, e: int) -> None:
        self.events += 1
        if self.removed[e] or not self.edge_on[e]:
            self.slot[e] = EMPTY
            self.dropped += 1
            self._log(LOST, self.src[e], e)
            self._slot_freed(e)
            return
        self.slot[e] = ARRIVED
        self._log(ARRIVE, self.dst[e], e)
        self._wake(self.dst[e])

    def _lost(self, e: int) -> None:
        self.events += 1
        self.slot[e] = EMPTY
        self._log(LOST, self.src[e], e)
        if self.s.resend:
            self.owed[e] = 1
            self._slot_freed(e)

    def _gala_after_update(self, i: int) -> None:
        t = self.k[i] - 1
        can_write = self.s.resend or self._can_write(i, t)
        for e in self.out_edges[i]:
            if self._edge_live(e, t):
                if can_write and self.slot[e] == EMPTY:
                    self._write_edge(i, e)
                else:
                    self.owed[e] = self.s.resend
                    self.skipped += 1
        if self._ready(i):
            self._mix(i)
            self._resume(i)
        elif self.s.sync_freq >= 0 and self.stale[i] >= self.s.sync_freq:
            self.status[i] = BLOCKED
            if self.s.resend:
                self._serve_owed(i)
        else:
            self.stale[i] += 1
            self.max_stale = max(self.max_stale, self.stale[i])
            self._resume(i)

    # ---------------------------------------------------------------- push-sum

    def _ps_send(self, i: int) -> None:
        t = self.k[i] - 1
        live_out = [e for e in self.out_edges[i] if self._edge_live(e, t)]
        if not live_out:
            return
        share = 1.0 / (len(live_out) + 1)
        code, p1, p2 = self.s.delay
        for e in live_out:
            delay = self.s.edge_factor[e] * rng.sample(code, p1, p2, self.delay_keys[e], self.seq_e[e])
            lost = self.s.drop > 0 and rng.uniform(self.drop_keys[e], self.seq_e[e]) < self.s.drop
            self.seq_e[e] += 1
            self.sent += 1
            self.events += 1
            if lost:
                self.dropped += 1
                self.lost_w += self.w[i] * share
                continue
            if not self.pool_free:  # same id allocation order as the Cython pool
                capacity = max(16, 2 * self.E) if self.pool_cap == 0 else 2 * self.pool_cap
                self.pool_free.extend(range(capacity - 1, self.pool_cap - 1, -1))
                self.pool_cap = capacity
            m = self.pool_free.pop()
            self.pool[m] = (self.x[i] * share, self.w[i] * share, e)
            self._push(self.now + delay, EV_ARRIVAL, m)
        self.x[i] *= share
        self.w[i] *= share

    def _ps_arrival(self, m: int) -> None:
        x_share, w_share, e = self.pool.pop(m)
        self.events += 1
        if self.removed[e]:
            self.dropped += 1
            self.lost_w += w_share
        else:
            self.acc_x[self.dst[e]] += x_share
            self.acc_w[self.dst[e]] += w_share
        self.pool_free.append(m)

    def _ps_receive(self, i: int) -> None:
        if self.acc_w[i] > 0:
            self.x[i] += self.acc_x[i]
            self.acc_x[i] = 0.0
            self.w[i] += self.acc_w[i]
            self.acc_w[i] = 0.0
            self.stale[i] = 0
            self.events += 1
        else:
            self.stale[i] += 1
            self.max_stale = max(self.max_stale, self.stale[i])

    # ---------------------------------------------------------------- updates

    def _z(self) -> np.ndarray:
        return self.x / self.w[:, None]

    def _builtin_delta(self, i: int) -> np.ndarray:
        s, d = self.s, self.d
        zi = self.x[i] / self.w[i]
        if s.update == AWAY_FROM_MEAN:
            mean = self._z().mean(axis=0)
            diff = zi - mean
            norm = math.sqrt(float(diff @ diff))
            if norm > 1e-12 * (1.0 + math.sqrt(float(mean @ mean))):
                return diff * (self.step / norm)
        elif s.update == RANDOM:
            g = np.array([rng.normal(self.update_keys[i], self.k[i] * d + c) for c in range(d)])
            return g * (self.step / math.sqrt(float(g @ g)))
        elif s.update == QUADRATIC:
            grad = zi - s.targets[i]
            norm = math.sqrt(float(grad @ grad))
            return grad * (-s.lr * (s.L / norm if norm > s.L else 1.0))
        delta = np.zeros(d)
        delta[0] = self.step if i < (self.n + 1) // 2 else -self.step
        return delta

    def _apply_update(self, i: int, delta: np.ndarray) -> None:
        self._act(i)
        self._log(UPDATE, i, -1)
        self.last_update_time[i] = self.now
        self.max_update_norm = max(self.max_update_norm, math.sqrt(float(delta @ delta)))
        self.x[i] += self.w[i] * delta
        self.injected_x += self.w[i] * delta
        self.k[i] += 1
        self.events += 1
        self.dirty = True
        if self.k[i] == self.s.iterations:
            self.reached += 1
        if self.certificate:
            if self.K < self.win.cap:
                # a new exact column: step in agent i's row (ref = 0 there: it is new)
                self.win.C[i, self.K] = self.step
                self.win.dm[self.K] = self.step / self.n
                self.dm_l1 += self.step / self.n
                self.win.q[i] += self.step
                self.K += 1
                self.wops += 1
            else:
                self.g[i] += self.step
                self.gmax = max(self.gmax, self.g[i])
            if self.k[i] == self.piece_start_k[i] + self.piece:
                self.piece_count += 1
        if self.s.protocol == PUSH_SUM:
            self._ps_send(i)
            self._ps_receive(i)
            self._resume(i)
        else:
            self._gala_after_update(i)

    # ---------------------------------------------------------------- faults

    def _push_fault(self, t: float, kind: int, target: int) -> None:
        self.pending_faults += 1
        self._push(t, kind, target)

    def _schedule_crash(self, i: int) -> None:
        up = rng.sample(EXPONENTIAL, self.uptime_mean, 0.0, self.crash_keys[i], self.rc_count[i])
        self.rc_count[i] += 1
        self.rc_pending[i] = 1
        self._push_fault(self.now + up, EV_CRASH, i * 4 + 2 + (1 if math.isfinite(self.s.downtime) else 0))

    def _crash(self, i: int, will_rejoin: bool, random: bool) -> None:
        self.events += 1
        if random:
            self.rc_pending[i] = 0
        if self.status[i] == CRASHED:
            return
        if random and self.k[i] >= self.s.iterations:
            return
        self._log(CRASH, i, -1)
        self._flog(FL_CRASH, i, -1)
        self.status[i] = CRASHED
        self.live -= 1
        self.crash_epoch[i] += 1
        if self.k[i] >= self.s.iterations:
            self.reached -= 1
        if self.certificate and self.k[i] >= self.piece_start_k[i] + self.piece:
            self.piece_count -= 1
        if will_rejoin:
            self.awaits[i] = 1
            self.awaiting += 1
            if random:
                self._push_fault(self.now + self.s.downtime, EV_REJOIN, self.crash_epoch[i] * self.n + i)
        if self.s.repair >= 0:
            self._push_fault(self.now + self.s.repair, EV_DETECT, self.crash_epoch[i] * self.n + i)
            return
        self.gone[i] = 1
        if self.s.protocol == PUSH_SUM:
            return
        for e in self.out_edges[i]:
            self._wake(self.dst[e])

    def _detect(self, i: int, epoch: int) -> bool:
        self.events += 1
        if self.status[i] != CRASHED or self.crash_epoch[i] != epoch:
            return False
        self.detected[i] = 1
        self._log(REPAIR, i, -1)
        self._flog(FL_DETECT, i, -1)
        return True

    def _rejoin(self, i: int, tag: int) -> int:
        self.events += 1
        if self.status[i] != CRASHED or (tag > 0 and tag != self.crash_epoch[i]):
            return -1
        self.status[i] = RUNNING
        self.gone[i] = 0
        self.live += 1
        self.life[i] += 1
        self.stale[i] = 0
        if self.k[i] >= self.s.iterations:
            self.reached += 1
        if self.certificate and self.k[i] >= self.piece_start_k[i] + self.piece:
            self.piece_count += 1
        if self.awaits[i]:
            self.awaits[i] = 0
            self.awaiting -= 1
        for e in self.out_edges[i]:
            self.owed[e] = 0
        if self.detected[i]:
            self.detected[i] = 0
            return 1
        return 0

    def _edge_off(self, e: int) -> None:
        self.edge_on[e] = 0
        self.owed[e] = 0
        if self.slot[e] == ARRIVED:
            self.slot[e] = EMPTY
            self.dropped += 1
            self._log(LOST, self.src[e], e)
            self._slot_freed(e)

    def _switch_edges(self, new_on: list[int]) -> None:
        for e in range(self.E):
            if self.edge_on[e] and not new_on[e]:
                self._edge_off(e)
        for e in range(self.E):
            if not self.edge_on[e] and new_on[e]:
                self.edge_on[e] = 1
                self.fresh[e] = 1

    def _connect(self) -> None:
        for e in range(self.E):
            if self.fresh[e]:
                self.fresh[e] = 0
                j = self.src[e]
                if self.status[j] != CRASHED and self.slot[e] == EMPTY and self._edge_live(e, self.k[j]):
                    self._write_edge(j, e)
        for r in range(self.n):
            self._wake(r)

    def _finish_rejoin(self, i: int) -> None:
        source = via = -1
        for e in self.in_edges[i]:
            if self.slot[e] == ARRIVED:
                self.slot[e] = EMPTY
                self.dropped += 1
                self._log(LOST, self.src[e], e)
                self._slot_freed(e)
        for e in self.in_edges[i]:
            if self.edge_on[e] and not self.removed[e]:
                self.fresh[e] = 1
                if via < 0 and self.status[self.src[e]] != CRASHED:
                    via, source = e, self.src[e]
        for e in self.out_edges[i]:
            if self.edge_on[e]:
                self.fresh[e] = 1
        if source >= 0:
            self.x[i] = self.x[source]
            self.w[i] = self.w[source]
            if self.certificate:
                self.prod[i] = self.prod[source]
                self.g[i] = self.g[source]
                old = self.win.C[i, :self.K].copy()
                self.win.C[i, :self.K] = self.win.C[source, :self.K]
                self._column_row_changed(i, old)
            self._act(i)
            self.dirty = True
        self._log(REJOIN, i, via)
        self._flog(FL_REJOIN, i, source)
        self._connect()
        self._resume(i)
        if self.s.crash_rate > 0 and not self.rc_pending[i]:
            self._schedule_crash(i)

    def _repair_topology(self, agent: int, op: int) -> None:
        """The twin of the Cython engine's: switch to the repair rule's edges (Python, shared)."""
        dead = [a for a in range(self.n) if self.detected[a]]
        new_on = [0] * self.E
        for pair in repair_rule.repaired_edges(self.orig_pairs, dead):
            new_on[self.edge_id[pair]] = 1
        self._switch_edges(new_on)
        if op == FL_REJOIN:
            self._finish_rejoin(agent)
        else:
            self._connect()

    def _remove_link(self, e: int) -> None:
        self.events += 1
        self.removed[e] = 1
        self._log(LINK, self.src[e], e)
        if self.s.protocol == PUSH_SUM:
            return
        self._wake(self.dst[e])

    # ---------------------------------------------------------------- observation

    def _close_piece(self) -> None:
        rows = np.array(list(range(self.n)) + [self.n + e for e in range(self.E) if self.slot[e] != EMPTY],
                        dtype=np.int64)
        self.cert_D = self.certifier.close(self.prod, self.g, rows, self.K)
        self.K = self.win.K
        self.dm_l1 = 0.0
        self.wops = 0
        self.piece = self.certifier.piece
        self.prod = np.eye(self.n + self.E)
        self.g[:] = 0.0
        self.gmax = 0.0
        self.piece_count = 0
        self.piece_start_k = list(self.k)
        self.close_pending = False

    def _window_exact_max(self, threshold: float) -> float:
        """max_a ||C_a - (ref + dm)||_1 for the first EXACT_AGENTS agents whose q_a + ||dm||_1
        exceeds threshold (the others count with that bound)."""
        K, best, left = self.K, 0.0, EXACT_AGENTS
        for a in range(self.n):
            v = float(self.win.q[a]) + self.dm_l1
            if v > threshold and left > 0:
                left -= 1
                v = float(seqsum(np.abs(self.win.C[a, :K] - self.win.ref[:K] - self.win.dm[:K])))
            best = max(best, v)
        return best

    def _column_row_changed(self, i: int, old: np.ndarray) -> None:
        """Agent i's window row changed from ``old``: update the agents' mean drift and q_i."""
        K = self.K
        self.win.dm[:K] += (self.win.C[i, :K] - old) / self.n
        # left-to-right sums, as the Cython loop adds (certificate.seqsum)
        self.win.q[i] = float(seqsum(np.abs(self.win.C[i, :K] - self.win.ref[:K])))
        self.dm_l1 = float(seqsum(np.abs(self.win.dm[:K])))
        self.wops += 1

    def _end_batch(self) -> None:
        bound = math.inf
        if self.dirty:
            self.dirty = False
            z = self._z()
            dist = float(np.sqrt(((z - z.mean(axis=0)) ** 2).sum(axis=1)).max())
            self.sup_distance = max(self.sup_distance, dist)
            if self.certificate:
                bound = self.cert_D + float(self.win.q.max()) + self.dm_l1 + 2.0 * self.gmax
                if bound > self.cert_sup and self.dm_l1 > 0.0:
                    # A new supremum? Take the window's exact value: re-centre (O(agents x
                    # columns), at most once per `agents` row changes), else evaluate the
                    # agents that could set it (at most EXACT_AGENTS of them).
                    if self.wops >= self.n:
                        self.win.recenter(self.K)
                        self.dm_l1 = 0.0
                        self.wops = 0
                        bound = self.cert_D + float(self.win.q.max()) + 2.0 * self.gmax
                    else:
                        bound = (self.cert_D + 2.0 * self.gmax
                                 + self._window_exact_max(self.cert_sup - self.cert_D - 2.0 * self.gmax))
                self.cert_sup = max(self.cert_sup, bound)
            self.obs_count += 1
            if self.obs_count % self.stride == 0:
                diam = diameter(z) if diameter_policy(self.n, self.d, self.samples) else math.nan
                self.traj.append([self.now, dist, diam, bound if self.certificate else math.nan])
                if len(self.traj) == 2 * self.samples:
                    self.traj = self.traj[1::2]
                    self.stride *= 2
        if self.certificate and self.live > 0 and self.piece_count >= self.live:
            self.close_pending = True
        if self.reached >= self.live and self.awaiting == 0:
            self.finished = True

    # ---------------------------------------------------------------- loop

    def run(self) -> dict:
        started = time.perf_counter()
        s = self.s
        for i in range(self.n):
            self._resume(i)
        for f in range(len(s.fault_time)):
            kind, target = int(s.fault_kind[f]), int(s.fault_target[f])
            if kind == FAULT_CRASH:
                self._push_fault(float(s.fault_time[f]), EV_CRASH, target * 4 + int(s.fault_awaits[f]))
            elif kind == FAULT_REJOIN:
                self._push_fault(float(s.fault_time[f]), EV_REJOIN, target)
            else:
                self._push_fault(float(s.fault_time[f]), EV_LINK, target)
        if s.crash_rate > 0:
            for i in range(self.n):
                self._schedule_crash(i)
        unit = self.d + 1 + (self.n + self.E if self.certificate else 0)  # as the Cython loop
        while True:
            if not self.heap:
                self._end_batch()
                if not self.finished:
                    self.deadlock = True
                    self._stop("deadlock", liveness.frozen_agents(self._snapshot()))
                break
            if self.heap[0][0] != self.now:
                self._end_batch()
                if self.finished:
                    break
                if self.close_pending:
                    self._close_piece()
            self.work += unit
            if self.work >= self.next_check or self.events > self.s.max_events:
                self.next_check = self.work + CHECK_WORK
                if not self._check():
                    break
            t, _, kind, target = heapq.heappop(self.heap)
            self.now = t
            if kind == EV_UPDATE:
                target, life = target % self.n, target // self.n
                if self.status[target] == CRASHED or life != self.life[target]:
                    continue
                if s.update == CALLBACK:
                    params = self.x[target] / self.w[target]
                    delta = callback_delta(s.callback, target, self.k[target], params)
                else:
                    delta = self._builtin_delta(target)
                self._apply_update(target, delta)
            elif kind == EV_ARRIVAL:
                if s.protocol == PUSH_SUM:
                    self._ps_arrival(target)
                else:
                    self._arrival(target)
            elif kind == EV_LOST:
                self._lost(target)
            elif kind == EV_CRASH:
                self.pending_faults -= 1
                self._crash(target // 4, bool(target & 1), bool(target & 2))
            elif kind == EV_LINK:
                self.pending_faults -= 1
                self._remove_link(target)
            elif kind == EV_DETECT:
                self.pending_faults -= 1
                if self._detect(target % self.n, target // self.n):
                    self._repair_topology(target % self.n, FL_DETECT)
            else:
                self.pending_faults -= 1
                rc = self._rejoin(target % self.n, target // self.n)
                if rc == 1:
                    self._repair_topology(target % self.n, FL_REJOIN)
                elif rc == 0:
                    self._finish_rejoin(target % self.n)
        return self._results(time.perf_counter() - started)

    def _snapshot(self) -> liveness.Snapshot:
        s = self.s
        int8 = lambda values: np.array(values, dtype=np.int8)
        return liveness.Snapshot(int8(self.status), int8(self.slot), int8(self.owed), int8(self.removed),
                                 np.array(self.k, dtype=np.int64), s.in_indptr, s.edge_src, s.edge_dst,
                                 s.out_indptr, s.out_edges, s.active, bool(s.mix_any), bool(s.resend),
                                 int8(self.edge_on), int8(self.gone))

    def _stop(self, reason: str, frozen: set[int] | None) -> None:
        self.stopped = reason
        self.deadlock = reason == "deadlock"
        if reason == "deadlock":
            self.diagnosis = liveness.diagnose(self._snapshot(), frozen, self.s.iterations)
        else:
            self.diagnosis = liveness.starvation(np.array(self.k), self.last_update_time, np.array(self.status),
                                                 self.s.iterations, self.events, self.s.max_events)

    def _check(self) -> bool:
        """The twin of the Cython engine's check between two slices of its loop."""
        if self.events > self.s.max_events:
            self._stop("event-budget", None)
            return False
        k = np.array(self.k, dtype=np.int64)
        stalled = (np.array(self.status) == BLOCKED) & (k < self.s.iterations)
        if self.pending_faults == 0 and self.check_k is not None and (stalled & (k == self.check_k)).any():
            frozen = liveness.frozen_agents(self._snapshot())
            if any(self.k[r] < self.s.iterations for r in frozen):
                self._stop("deadlock", frozen)
                return False
        self.check_k = k
        return True

    def _results(self, wall: float) -> dict:
        mass_x = self.x.sum(axis=0) + self.acc_x.sum(axis=0)
        mass_w = float(self.w.sum() + self.acc_w.sum())
        for x_share, w_share, _ in self.pool.values():
            mass_x = mass_x + x_share
            mass_w += w_share
        return {
            "x": self.x.copy(),
            "w": self.w.copy(),
            "iterations": np.array(self.k, dtype=np.int64),
            "crashed": np.array([st == CRASHED for st in self.status]),
            "sup_distance": self.sup_distance,
            "certificate": self.cert_sup if self.certificate else math.nan,
            "pieces": self.certifier.closed if self.certificate else 0,
            "max_staleness": self.max_stale,
            "max_message_age": self.max_age,
            "virtual_time": self.now,
            "events": self.events,
            "sent": self.sent,
            "skipped": self.skipped,
            "dropped": self.dropped,
            "deadlock": self.deadlock,
            "stopped": self.stopped,
            "diagnosis": self.diagnosis,
            "actions": self.actions,
            "tau_actions": self.tau_actions,
            "max_fresh": self.max_fresh,
            "last_use": self.last_use.copy(),
            "max_avoid": self.max_avoid.copy(),
            "removed": np.array(self.removed, dtype=bool),
            "edge_on": np.array(self.edge_on, dtype=bool),
            "faults": np.array(self.flog, dtype=LOG_DTYPE),
            "event_log": np.array(self.log, dtype=LOG_DTYPE),
            "max_update_norm": self.max_update_norm,
            "mass_x": mass_x,
            "mass_w": mass_w,
            "injected_x": self.injected_x.copy(),
            "lost_w": self.lost_w,
            "trajectory": np.array(self.traj, dtype=float).reshape(-1, 4),
            "wall_time": wall,
        }
