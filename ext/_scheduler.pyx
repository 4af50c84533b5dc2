"""Event-driven simulator of asynchronous gossip (GALA and push-sum) in virtual time.

Events are C structs in a binary heap ordered by (time, push sequence), so ties are broken
deterministically; agent state is an n x d float64 array; the whole loop runs without the GIL for
the built-in update models (a ``callback`` model returns to Python once per local update and
nothing else). Random draws come from counter-based streams (see ``galasim/sim/rng.py``), so the
pure-Python reference simulator (``galasim/sim/reference.py``), which implements the same
semantics line for line, reproduces every run. Protocol semantics: ``galasim/gossip/protocol.py``.

Every run ends: the loop hands control back to Python every CHECK_WORK units of work (Ctrl-C is
honoured there), and a run stops with a diagnosis when agents deadlock (galasim/sim/liveness.py)
or the event budget is spent.

The action clock: every update and every mix of an agent is one *action*; the engine measures the
constants of the epsilon theorem in this clock (galasim/sim/bounds.py): the smallest mix weight
beta, the largest message age tau (mix action minus the writer's last action before the write) and
B, one more than the longest run of actions that avoids some edge of the final live graph.

Certificate (GALA): the state (agents and live message buffers) evolves by row-stochastic maps
plus injections. Per event the loop keeps the product of the realised maps since the current
piece began, the window's exact column of every recent update (one double per column and row
operation) with the agents' deviations from their mean, and g, the norms (alpha L) of updates that
found the window full, propagated through the same maps; a piece closes when every live agent has
done `piece` more iterations, and galasim/sim/certificate.py turns the closed pieces into the
bound (see there).
"""
import time

import numpy as np

from galasim.gossip import repair as repair_rule
from galasim.sim import liveness
from galasim.sim.certificate import PiecewiseCertificate
from galasim.sim.events import LOG_DTYPE
from galasim.sim.models import callback_delta
from galasim.sim.result import diameter, diameter_policy

from cpython.exc cimport PyErr_CheckSignals
from libc.math cimport INFINITY, NAN, cos, exp, fabs, isfinite, log, pow, sqrt
from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcpy

# Event kinds
cdef enum:
    EV_UPDATE = 0
    EV_ARRIVAL = 1
    EV_LOST = 2
    EV_CRASH = 3       # target: agent * 4 + (1: a rejoin will end it) + (2: a random crash)
    EV_LINK = 4
    EV_DETECT = 5      # target: crash epoch * n + agent (stale once the agent rejoined)
    EV_REJOIN = 6      # target: tag * n + agent; tag 0: explicit, else the crash epoch it ends

# Message-slot states (LOSING: in flight and dropped: the sender learns it at the arrival time)
cdef enum:
    EMPTY = 0
    IN_FLIGHT = 1
    ARRIVED = 2
    LOSING = 3

# Kinds of the event log (galasim/sim/events.py names them)
cdef enum:
    LOG_UPDATE = 0
    LOG_WRITE = 1
    LOG_ARRIVE = 2
    LOG_MIX = 3
    LOG_LOST = 4
    LOG_CRASH = 5
    LOG_LINK = 6
    LOG_REPAIR = 7
    LOG_REJOIN = 8

# Kinds of the fault log (always kept; galasim/sim/api.py reads it) and of explicit fault rows
cdef enum:
    FL_CRASH = 0
    FL_DETECT = 1
    FL_REJOIN = 2

cdef enum:
    FAULT_CRASH = 0
    FAULT_REJOIN = 1
    FAULT_LINK = 2

# Agent states
cdef enum:
    RUNNING = 0
    BLOCKED = 1
    CRASHED = 2

# Protocols, update models and distributions: codes of galasim.gossip and galasim.sim.models
cdef enum:
    GALA = 0
    PUSH_SUM = 1

cdef enum:
    TWO_CAMP = 0
    AWAY_FROM_MEAN = 1
    RANDOM = 2
    QUADRATIC = 3
    CALLBACK = 4

cdef enum:
    CONSTANT = 0
    EXPONENTIAL = 1
    UNIFORM = 2
    LOGNORMAL = 3
    PARETO = 4

# Random streams (galasim/sim/rng.py)
cdef enum:
    S_COMPUTE = 1
    S_DELAY = 2
    S_DROP = 3
    S_UPDATE = 4
    S_CRASH = 6

# Return codes of the event loop
cdef enum:
    RUN_DONE = 0
    RUN_CALLBACK = 1
    RUN_NOMEM = 2
    RUN_CLOSE = 3
    RUN_CHECK = 4
    RUN_FAULT = 5

# Work units (about one per double touched) between two returns to Python: a few milliseconds.
cdef int64_t CHECK_WORK = 1 << 23
cdef int64_t EXACT_AGENTS = 4  # certificate.EXACT_AGENTS

cdef struct LogEntry:
    double time
    int kind
    int64_t agent
    int64_t edge

cdef extern from *:
    """
    #ifndef GALASIM_DEBUG
    #define GALASIM_DEBUG 0
    #endif
    """
    int GALASIM_DEBUG

# Built with GALASIM_CYTHON_DEBUG=1 (bounds, wraparound and initialisation checks on)?
DEBUG_BUILD = bool(GALASIM_DEBUG)

cdef uint64_t GOLDEN = 0x9E3779B97F4A7C15ULL
cdef double TWO_PI = 6.283185307179586
cdef double INV_2_53 = 1.0 / 9007199254740992.0


# ------------------------------------------------------------------ counter-based random streams

cdef inline uint64_t mix64(uint64_t z) noexcept nogil:
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL
    return z ^ (z >> 31)


cdef inline uint64_t stream_key(uint64_t seed, uint64_t stream, uint64_t entity) noexcept nogil:
    return mix64(mix64(seed * GOLDEN + stream) + entity * GOLDEN)


cdef inline double uniform(uint64_t key, uint64_t counter) noexcept nogil:
    return (<double>(mix64(key + counter * GOLDEN) >> 11) + 0.5) * INV_2_53


cdef inline double normal(uint64_t key, uint64_t counter) noexcept nogil:
    cdef double u1 = uniform(key, 2 * counter)
    cdef double u2 = uniform(key, 2 * counter + 1)
    return sqrt(-2.0 * log(u1)) * cos(TWO_PI * u2)


cdef inline double sample(Distribution dist, uint64_t key, uint64_t counter) noexcept nogil:
    if dist.code == CONSTANT:
        return dist.p1
    if dist.code == EXPONENTIAL:
        return -dist.p1 * log(uniform(key, counter))
    if dist.code == UNIFORM:
        return dist.p1 + (dist.p2 - dist.p1) * uniform(key, counter)
    if dist.code == LOGNORMAL:
        return exp(dist.p1 + dist.p2 * normal(key, counter))
    return dist.p1 * pow(uniform(key, counter), -1.0 / dist.p2)


def draw(int code, double p1, double p2, uint64_t seed, uint64_t stream, uint64_t entity,
         uint64_t counter):
    """One draw of the C streams (exposed so tests can compare it with galasim.sim.rng)."""
    cdef Distribution dist = Distribution(code, p1, p2)
    return sample(dist, stream_key(seed, stream, entity), counter)


# ------------------------------------------------------------------------------- the event heap

cdef inline bint earlier(Event* a, Event* b) noexcept nogil:
    return a.time < b.time or (a.time == b.time and a.seq < b.seq)


cdef int heap_push(EventHeap* h, double time, int kind, int64_t target) noexcept nogil:
    cdef Py_ssize_t i, parent
    cdef Event* grown
    if h.size == h.capacity:
        grown = <Event*>realloc(h.items, 2 * h.capacity * sizeof(Event))
        if grown == NULL:
            return -1
        h.items = grown
        h.capacity *= 2
    cdef Event ev
    ev.time = time
    ev.seq = h.next_seq
    ev.kind = kind
    ev.target = target
    h.next_seq += 1
    i = h.size
    h.size += 1
    while i > 0:
        parent = (i - 1) >> 1
        if earlier(&ev, &h.items[parent]):
            h.items[i] = h.items[parent]
            i = parent
        else:
            break
    h.items[i] = ev
    return 0


cdef Event heap_pop(EventHeap* h) noexcept nogil:
    cdef Event top = h.items[0]
    cdef Event last
    cdef Py_ssize_t i = 0, child
    h.size -= 1
    if h.size > 0:
        last = h.items[h.size]
        while True:
            child = 2 * i + 1
            if child >= h.size:
                break
            if child + 1 < h.size and earlier(&h.items[child + 1], &h.items[child]):
                child += 1
            if earlier(&h.items[child], &last):
                h.items[i] = h.items[child]
                i = child
            else:
                break
        h.items[i] = last
    return top


cdef int log_append(LogEntry** log, Py_ssize_t* size, Py_ssize_t* cap, Py_ssize_t first,
                    double time, int kind, int64_t agent, int64_t edge) noexcept nogil:
    """Append one entry to a growable log (the event log, the fault log); -1 when out of memory."""
    cdef LogEntry* grown
    if size[0] == cap[0]:
        grown = <LogEntry*>realloc(log[0], max(first, 2 * cap[0]) * sizeof(LogEntry))
        if grown == NULL:
            return -1
        log[0] = grown
        cap[0] = max(first, 2 * cap[0])
    log[0][size[0]].time = time
    log[0][size[0]].kind = kind
    log[0][size[0]].agent = agent
    log[0][size[0]].edge = edge
    size[0] += 1
    return 0


cdef class Engine:
    """One GALA or push-sum simulation; build it from an :class:`galasim.sim.spec.EngineSpec`."""
    # configuration
    cdef int protocol, n, d, update, mix_any, certificate, samples, period, resend, record
    cdef int64_t iterations, sync_freq, max_events
    cdef double lr, L, step, drop
    cdef uint64_t seed
    cdef Distribution compute, delay
    cdef int64_t[::1] in_indptr, edge_src, edge_dst, out_indptr, out_edges
    cdef unsigned char[:, ::1] active
    cdef double[::1] agent_factor, edge_factor, crash_time, link_time, fault_time
    cdef int64_t[::1] fault_kind, fault_target
    cdef signed char[::1] fault_awaits
    cdef double repair, crash_rate, downtime
    cdef Distribution uptime
    cdef uint64_t[::1] crash_keys
    cdef object orig_pairs, edge_id
    cdef double[:, ::1] targets
    cdef uint64_t[::1] compute_keys, update_keys, delay_keys, drop_keys
    cdef object callback

    # agent and message state
    cdef double[:, ::1] x, payload
    cdef double[::1] w, acc_w, delta, mean, injected_x
    cdef double[:, ::1] acc_x
    cdef int64_t[::1] k, stale, write_k, seq_e
    cdef signed char[::1] status, owed, slot, removed
    # crash-and-repair: edges switched on, failures known to the survivors (perfect detector),
    # failures detected after the timeout, crashes a rejoin will end, a random crash pending
    cdef signed char[::1] edge_on, fresh, gone, detected, awaits, rc_pending
    cdef int64_t[::1] life, crash_epoch, rc_count
    cdef int64_t pending_faults, awaiting, fault_agent
    cdef int fault_op
    cdef double[::1] last_update_time
    cdef EventHeap heap
    cdef double now
    cdef bint dirty, finished, deadlock, oom
    cdef int64_t live, reached, cb_agent, work, next_check
    cdef object stopped, diagnosis, check_k

    # the action clock (see the module docstring)
    cdef int64_t actions, tau_actions, max_fresh
    cdef int64_t[::1] last_action, snap, last_use, max_avoid

    # event log (record_events)
    cdef LogEntry* log
    cdef Py_ssize_t log_n, log_cap
    cdef LogEntry* flog
    cdef Py_ssize_t flog_n, flog_cap

    # push-sum message pool (several messages may be in flight on one edge)
    cdef double* pool_x
    cdef int64_t* pool_edge
    cdef int64_t* pool_free
    cdef Py_ssize_t pool_cap, pool_free_n

    # statistics
    cdef int64_t events, sent, skipped, dropped, max_stale, max_age
    cdef double sup_distance, max_update_norm

    # exact running supremum of max_i ||z_i - mean|| by branch and bound: r_i = ||z_i - mref||
    # in a max tournament tree, so an observation costs O(d log n) unless it can beat the sup
    cdef double[:, ::1] zc
    cdef double[::1] zsum, mref, tree
    cdef Py_ssize_t tree_size
    cdef double lost_w

    # certificate: product of the realised maps and propagated update norms over the current piece
    cdef double[:, ::1] prod
    cdef double[::1] g
    cdef int64_t[::1] piece_start_k
    cdef int64_t piece, piece_count
    cdef double cert_D, gmax, cert_sup
    # the window of exact injection columns (galasim.sim.certificate.ColumnWindow): C, the
    # agents' mean column at the last close (ref), its drift since (dm), q_a = ||C_a - ref||_1
    cdef double[:, ::1] wC
    cdef double[::1] wref, wdm, wq
    cdef int64_t K, wcap, wops  # wops: window row changes since the last re-centring
    cdef double dm_l1
    cdef bint close_pending
    cdef object certifier

    # trajectory sample (stride doubles whenever the buffer fills); sampled states are kept for
    # their diameters only while that is small, else each diameter is computed when sampled
    # (galasim.sim.result.diameter_policy)
    cdef double[:, ::1] traj
    cdef double[:, :, ::1] traj_states
    cdef bint keep_states, sample_diameter
    cdef Py_ssize_t traj_n, obs_count, stride

    def __cinit__(self):
        self.heap.items = NULL
        self.pool_x = NULL
        self.pool_edge = NULL
        self.pool_free = NULL
        self.log = NULL
        self.flog = NULL

    def __dealloc__(self):
        free(self.heap.items)
        free(self.log)
        free(self.flog)
        free(self.pool_x)
        free(self.pool_edge)
        free(self.pool_free)

    def __init__(self, spec):
        cdef Py_ssize_t n = spec.n, d = spec.dim, E = len(spec.edge_src), i
        self.protocol = spec.protocol
        self.n = n
        self.d = d
        self.iterations = spec.iterations
        self.lr = spec.lr
        self.L = spec.L
        self.step = spec.step
        self.update = spec.update
        self.sync_freq = spec.sync_freq
        self.mix_any = spec.mix_any
        self.resend = spec.resend
        self.record = spec.record_events
        self.max_events = spec.max_events
        self.drop = spec.drop
        self.seed = spec.seed
        self.callback = spec.callback
        self.compute = Distribution(spec.compute[0], spec.compute[1], spec.compute[2])
        self.delay = Distribution(spec.delay[0], spec.delay[1], spec.delay[2])
        as_i64 = lambda a: np.ascontiguousarray(a, dtype=np.int64)
        as_f64 = lambda a: np.ascontiguousarray(a, dtype=np.float64)
        self.in_indptr = as_i64(spec.in_indptr)
        self.edge_src = as_i64(spec.edge_src)
        self.edge_dst = as_i64(spec.edge_dst)
        self.out_indptr = as_i64(spec.out_indptr)
        self.out_edges = as_i64(spec.out_edges)
        self.active = np.ascontiguousarray(spec.active, dtype=np.uint8)
        self.period = self.active.shape[0]
        self.agent_factor = as_f64(spec.agent_factor)
        self.edge_factor = as_f64(spec.edge_factor)
        self.crash_time = as_f64(spec.crash_time)
        self.link_time = as_f64(spec.link_time)
        self.fault_time = as_f64(spec.fault_time)
        self.fault_kind = as_i64(spec.fault_kind)
        self.fault_target = as_i64(spec.fault_target)
        self.fault_awaits = np.ascontiguousarray(spec.fault_awaits, dtype=np.int8)
        self.repair = spec.repair
        self.crash_rate = spec.crash_rate
        self.downtime = spec.downtime
        self.uptime = Distribution(EXPONENTIAL, 1.0 / spec.crash_rate if spec.crash_rate > 0 else 0.0, 0.0)
        self.orig_pairs = [(int(u), int(v)) for u, v, on in zip(spec.edge_src, spec.edge_dst, spec.edge_on) if on]
        self.edge_id = {(int(u), int(v)): e for e, (u, v) in enumerate(zip(spec.edge_src, spec.edge_dst))}
        self.targets = as_f64(spec.targets)
        keys = lambda stream, count: np.array(
            [stream_key(self.seed, stream, j) for j in range(count)], dtype=np.uint64)
        self.compute_keys = keys(S_COMPUTE, n)
        self.update_keys = keys(S_UPDATE, n)
        self.delay_keys = keys(S_DELAY, E)
        self.drop_keys = keys(S_DROP, E)
        self.crash_keys = keys(S_CRASH, n)

        self.x = np.zeros((n, d))
        self.payload = np.zeros((E, d))
        self.w = np.ones(n)
        self.acc_x = np.zeros((n, d))
        self.acc_w = np.zeros(n)
        self.delta = np.zeros(d)
        self.mean = np.zeros(d)
        self.injected_x = np.zeros(d)
        self.k = np.zeros(n, dtype=np.int64)
        self.stale = np.zeros(n, dtype=np.int64)
        self.write_k = np.zeros(E, dtype=np.int64)
        self.seq_e = np.zeros(E, dtype=np.int64)
        self.status = np.zeros(n, dtype=np.int8)
        self.slot = np.zeros(E, dtype=np.int8)
        self.owed = np.zeros(E, dtype=np.int8)
        self.removed = np.zeros(E, dtype=np.int8)
        self.edge_on = np.ascontiguousarray(spec.edge_on, dtype=np.int8).copy()
        self.fresh = np.zeros(E, dtype=np.int8)
        self.gone = np.zeros(n, dtype=np.int8)
        self.detected = np.zeros(n, dtype=np.int8)
        self.awaits = np.zeros(n, dtype=np.int8)
        self.rc_pending = np.zeros(n, dtype=np.int8)
        self.life = np.zeros(n, dtype=np.int64)
        self.crash_epoch = np.zeros(n, dtype=np.int64)
        self.rc_count = np.zeros(n, dtype=np.int64)
        self.last_update_time = np.zeros(n)
        self.live = n
        self.last_action = np.zeros(n, dtype=np.int64)
        self.snap = np.zeros(E, dtype=np.int64)
        self.last_use = np.zeros(E, dtype=np.int64)
        self.max_avoid = np.zeros(E, dtype=np.int64)
        self.next_check = CHECK_WORK
        self.stopped = ""
        self.diagnosis = ""
        self.check_k = None

        self.heap.capacity = max(16, 2 * (n + E))
        self.heap.items = <Event*>malloc(self.heap.capacity * sizeof(Event))
        if self.heap.items == NULL:
            raise MemoryError("cannot allocate the event heap")
        self.pool_cap = 0
        if self.protocol == PUSH_SUM:
            self._grow_pool(max(16, 2 * E))

        self.certificate = spec.certificate and self.protocol == GALA
        if self.certificate:
            self.prod = np.eye(n + E)
            self.g = np.zeros(n + E)
            # certificate 2 ("exact"): the window of exact columns; 1: the Dobrushin pieces alone
            self.certifier = PiecewiseCertificate(n + E, agents=n, columns=None if spec.certificate == 2 else 0)
            self.piece = self.certifier.piece
            self.wC = self.certifier.window.C
            self.wref = self.certifier.window.ref
            self.wdm = self.certifier.window.dm
            self.wq = self.certifier.window.q
            self.wcap = self.certifier.window.cap
            self.piece_start_k = np.zeros(n, dtype=np.int64)
        self.zc = np.zeros((n, d))
        self.zsum = np.zeros(d)
        self.mref = np.zeros(d)
        self.tree_size = 1
        while self.tree_size < n:
            self.tree_size *= 2
        # Padding leaves hold -inf so that no threshold ever selects them (a -1.0 padding was
        # selected once the mean drifted by more than sup + 1, reading agent rows i >= n).
        self.tree = np.full(2 * self.tree_size, -np.inf)
        for i in range(n):
            self._tree_set(i, 0.0)
        self.samples = max(2, spec.samples)
        self.traj = np.full((2 * self.samples + 1, 4), np.nan)
        policy = diameter_policy(n, d, self.samples)
        self.keep_states = policy == "store"
        self.sample_diameter = policy == "sample"
        self.traj_states = np.zeros((2 * self.samples + 1 if self.keep_states else 1, n if self.keep_states else 1,
                                     d if self.keep_states else 1))
        self.stride = 1

    # ------------------------------------------------------------------ small helpers (nogil)

    cdef int _grow_pool(self, Py_ssize_t capacity) noexcept nogil:
        cdef Py_ssize_t m, stride = self.d + 1
        cdef double* px = <double*>realloc(self.pool_x, capacity * stride * sizeof(double))
        if px == NULL:
            return -1
        self.pool_x = px
        cdef int64_t* pe = <int64_t*>realloc(self.pool_edge, capacity * sizeof(int64_t))
        if pe == NULL:
            return -1
        self.pool_edge = pe
        cdef int64_t* pf = <int64_t*>realloc(self.pool_free, capacity * sizeof(int64_t))
        if pf == NULL:
            return -1
        self.pool_free = pf
        # Free slots are popped from the end: push the new ids in reverse so that the lowest
        # id is used first, exactly like the reference's list.
        for m in range(capacity - 1, self.pool_cap - 1, -1):
            self.pool_free[self.pool_free_n] = m
            self.pool_free_n += 1
        self.pool_cap = capacity
        return 0

    cdef inline void _push(self, double t, int kind, int64_t target) noexcept nogil:
        if heap_push(&self.heap, t, kind, target) != 0:
            self.oom = True

    cdef void _log(self, int kind, int64_t agent, int64_t edge) noexcept nogil:
        if self.record and log_append(&self.log, &self.log_n, &self.log_cap, 1024, self.now, kind,
                                      agent, edge) != 0:
            self.oom = True

    cdef void _flog(self, int kind, int64_t agent, int64_t other) noexcept nogil:
        """The fault log, kept whether or not events are recorded (the summary reports it)."""
        if log_append(&self.flog, &self.flog_n, &self.flog_cap, 64, self.now, kind, agent, other) != 0:
            self.oom = True

    cdef inline bint _edge_live(self, int64_t e, int64_t t) noexcept nogil:
        return (self.active[t % self.period, e] != 0 and not self.removed[e] and self.edge_on[e]
                and not self.gone[self.edge_dst[e]])

    cdef bint _can_write(self, int64_t j, int64_t t) noexcept nogil:
        cdef int64_t p, e
        for p in range(self.out_indptr[j], self.out_indptr[j + 1]):
            e = self.out_edges[p]
            if self._edge_live(e, t) and self.slot[e] != EMPTY:
                return False
        return True

    cdef void _resume(self, int64_t i) noexcept nogil:
        if self.status[i] == CRASHED:
            return
        self.status[i] = RUNNING
        cdef double c = self.agent_factor[i] * sample(self.compute, self.compute_keys[i], self.k[i])
        # Tagged with the agent's life: an update pending when it crashed is void after a rejoin.
        self._push(self.now + c, EV_UPDATE, self.life[i] * self.n + i)

    # ------------------------------------------------------------------ GALA message passing

    cdef void _write_edge(self, int64_t j, int64_t e) noexcept nogil:
        """Agent j's current parameters leave on edge e (which must be free)."""
        cdef int64_t c
        cdef double delay
        cdef bint lost
        for c in range(self.d):
            self.payload[e, c] = self.x[j, c]
        self.owed[e] = 0
        self.write_k[e] = self.k[self.edge_dst[e]]
        self.snap[e] = self.last_action[j]
        delay = self.edge_factor[e] * sample(self.delay, self.delay_keys[e], self.seq_e[e])
        lost = self.drop > 0 and uniform(self.drop_keys[e], self.seq_e[e]) < self.drop
        self.slot[e] = LOSING if lost else IN_FLIGHT
        self.seq_e[e] += 1
        self.sent += 1
        self.events += 1
        self._log(LOG_WRITE, j, e)
        if self.certificate:
            self.prod[self.n + e, :] = self.prod[j, :]
            self.g[self.n + e] = self.g[j]
            for c in range(self.K):
                self.wC[self.n + e, c] = self.wC[j, c]
        if lost:
            self.dropped += 1
            self._push(self.now + delay, EV_LOST, e)
        else:
            self._push(self.now + delay, EV_ARRIVAL, e)

    cdef void _serve_owed(self, int64_t j) noexcept nogil:
        """gala-resend: agent j writes on every live out-edge it owes a message and that is free."""
        cdef int64_t p, e, t = self.k[j] - 1
        for p in range(self.out_indptr[j], self.out_indptr[j + 1]):
            e = self.out_edges[p]
            if self.owed[e] and self.slot[e] == EMPTY and self._edge_live(e, t):
                self._write_edge(j, e)

    cdef bint _ready(self, int64_t i) noexcept nogil:
        """Every live in-peer has a fresh message (static graphs), or any is fresh (schedules)."""
        cdef int64_t e
        cdef bint has_live = False, any_arrived = False
        for e in range(self.in_indptr[i], self.in_indptr[i + 1]):
            if self.slot[e] == ARRIVED:
                any_arrived = True
                continue
            if self.removed[e] or not self.edge_on[e] or self.gone[self.edge_src[e]]:
                continue
            has_live = True
            if not self.mix_any:
                return False
        if self.mix_any:
            return any_arrived or not has_live
        return True

    cdef void _slot_freed(self, int64_t e) noexcept nogil:
        """gala-resend: a blocked sender that owes edge e a skipped or lost write sends it now."""
        cdef int64_t j = self.edge_src[e]
        if self.status[j] == BLOCKED and self.owed[e] and self._edge_live(e, self.k[j] - 1):
            self._write_edge(j, e)

    cdef void _mix(self, int64_t i) noexcept nogil:
        cdef int64_t e, c, m = 0, lo = self.in_indptr[i], hi = self.in_indptr[i + 1]
        cdef int64_t rows = self.n, l, cols
        cdef double inv, old, v
        for e in range(lo, hi):
            if self.slot[e] == ARRIVED:
                m += 1
                for c in range(self.d):
                    self.x[i, c] += self.payload[e, c]
        self.stale[i] = 0
        if m == 0:
            return
        self._act(i)
        if m > self.max_fresh:
            self.max_fresh = m
        inv = 1.0 / (m + 1)
        for c in range(self.d):
            self.x[i, c] *= inv
        if self.certificate:
            cols = self.prod.shape[1]
            for e in range(lo, hi):
                if self.slot[e] == ARRIVED:
                    for l in range(cols):
                        self.prod[i, l] += self.prod[rows + e, l]
                    self.g[i] += self.g[rows + e]
            for l in range(cols):
                self.prod[i, l] *= inv
            self.g[i] *= inv
            self._mix_columns(i, m, inv)
        for e in range(lo, hi):
            if self.slot[e] == ARRIVED:
                self.slot[e] = EMPTY
                if self.k[i] - self.write_k[e] > self.max_age:
                    self.max_age = self.k[i] - self.write_k[e]
                if self.actions - self.snap[e] > self.tau_actions:
                    self.tau_actions = self.actions - self.snap[e]
                if self.actions - self.last_use[e] - 1 > self.max_avoid[e]:
                    self.max_avoid[e] = self.actions - self.last_use[e] - 1
                self.last_use[e] = self.actions
        self.events += 1
        self._log(LOG_MIX, i, -1)
        self._touch(i)
        for e in range(lo, hi):
            if self.slot[e] == EMPTY:
                self._slot_freed(e)

    cdef void _wake(self, int64_t r) noexcept nogil:
        if self.status[r] == BLOCKED and self._ready(r):
            self._mix(r)
            self._resume(r)

    cdef void _arrival(self, int64_t e) noexcept nogil:
        self.events += 1
        if self.removed[e] or not self.edge_on[e]:
            self.slot[e] = EMPTY
            self.dropped += 1
            self._log(LOG_LOST, self.edge_src[e], e)
            self._slot_freed(e)
            return
        self.slot[e] = ARRIVED
        self._log(LOG_ARRIVE, self.edge_dst[e], e)
        self._wake(self.edge_dst[e])

    cdef void _lost(self, int64_t e) noexcept nogil:
        """The sender learns its message was dropped (gala-resend: it owes the edge a write)."""
        self.events += 1
        self.slot[e] = EMPTY
        self._log(LOG_LOST, self.edge_src[e], e)
        if self.resend:
            self.owed[e] = 1
            self._slot_freed(e)

    cdef void _gala_after_update(self, int64_t i) noexcept nogil:
        cdef int64_t t = self.k[i] - 1, p, e
        # Reference rule: write on every live out-edge or, if any still holds an unread message,
        # on none. gala-resend: write on each free live out-edge, owe the occupied ones.
        cdef bint can_write = self.resend or self._can_write(i, t)
        for p in range(self.out_indptr[i], self.out_indptr[i + 1]):
            e = self.out_edges[p]
            if self._edge_live(e, t):
                if can_write and self.slot[e] == EMPTY:
                    self._write_edge(i, e)
                else:
                    self.owed[e] = self.resend
                    self.skipped += 1
        if self._ready(i):
            self._mix(i)
            self._resume(i)
        elif self.sync_freq >= 0 and self.stale[i] >= self.sync_freq:
            self.status[i] = BLOCKED
            if self.resend:
                self._serve_owed(i)
        else:
            self.stale[i] += 1
            if self.stale[i] > self.max_stale:
                self.max_stale = self.stale[i]
            self._resume(i)

    # ------------------------------------------------------------------ push-sum

    cdef void _ps_send(self, int64_t i) noexcept nogil:
        cdef int64_t t = self.k[i] - 1, p, e, m, c, live_out = 0
        cdef double share, delay
        cdef bint lost
        cdef Py_ssize_t stride = self.d + 1
        for p in range(self.out_indptr[i], self.out_indptr[i + 1]):
            if self._edge_live(self.out_edges[p], t):
                live_out += 1
        if live_out == 0:
            return
        share = 1.0 / (live_out + 1)
        for p in range(self.out_indptr[i], self.out_indptr[i + 1]):
            e = self.out_edges[p]
            if not self._edge_live(e, t):
                continue
            delay = self.edge_factor[e] * sample(self.delay, self.delay_keys[e], self.seq_e[e])
            lost = self.drop > 0 and uniform(self.drop_keys[e], self.seq_e[e]) < self.drop
            self.seq_e[e] += 1
            self.sent += 1
            self.events += 1
            if lost:
                self.dropped += 1
                self.lost_w += self.w[i] * share
                continue
            if self.pool_free_n == 0 and self._grow_pool(2 * self.pool_cap) != 0:
                self.oom = True
                return
            self.pool_free_n -= 1
            m = self.pool_free[self.pool_free_n]
            for c in range(self.d):
                self.pool_x[m * stride + c] = self.x[i, c] * share
            self.pool_x[m * stride + self.d] = self.w[i] * share
            self.pool_edge[m] = e
            self._push(self.now + delay, EV_ARRIVAL, m)
        for c in range(self.d):
            self.x[i, c] *= share
        self.w[i] *= share

    cdef void _ps_arrival(self, int64_t m) noexcept nogil:
        cdef int64_t e = self.pool_edge[m], r = self.edge_dst[e], c
        cdef Py_ssize_t stride = self.d + 1
        self.events += 1
        if self.removed[e]:
            self.dropped += 1
            self.lost_w += self.pool_x[m * stride + self.d]
        else:
            for c in range(self.d):
                self.acc_x[r, c] += self.pool_x[m * stride + c]
            self.acc_w[r] += self.pool_x[m * stride + self.d]
        self.pool_free[self.pool_free_n] = m
        self.pool_free_n += 1

    cdef void _ps_receive(self, int64_t i) noexcept nogil:
        cdef int64_t c
        if self.acc_w[i] > 0:
            for c in range(self.d):
                self.x[i, c] += self.acc_x[i, c]
                self.acc_x[i, c] = 0.0
            self.w[i] += self.acc_w[i]
            self.acc_w[i] = 0.0
            self.stale[i] = 0
            self.events += 1
            self._touch(i)
        else:
            self.stale[i] += 1
            if self.stale[i] > self.max_stale:
                self.max_stale = self.stale[i]

    # ------------------------------------------------------------------ local updates

    cdef void _tree_set(self, int64_t i, double value) noexcept nogil:
        cdef Py_ssize_t p = self.tree_size + i
        self.tree[p] = value
        p >>= 1
        while p >= 1:
            self.tree[p] = self.tree[2 * p] if self.tree[2 * p] > self.tree[2 * p + 1] else self.tree[2 * p + 1]
            p >>= 1

    cdef void _touch(self, int64_t i) noexcept nogil:
        """Agent i's parameters changed: refresh its cached z_i, the running sum and r_i."""
        cdef int64_t c
        cdef double z, v, r2 = 0.0
        for c in range(self.d):
            z = self.x[i, c] / self.w[i]
            self.zsum[c] += z - self.zc[i, c]
            self.zc[i, c] = z
            v = z - self.mref[c]
            r2 += v * v
        self._tree_set(i, sqrt(r2))
        self.dirty = True

    cdef double _rereference(self) noexcept nogil:
        """Recompute the mean exactly, re-centre every r_i on it; return max_i ||z_i - mean||."""
        cdef int64_t i, c
        cdef double v, r2
        cdef Py_ssize_t p
        for c in range(self.d):
            self.zsum[c] = 0.0
        for i in range(self.n):
            for c in range(self.d):
                self.zsum[c] += self.zc[i, c]
        for c in range(self.d):
            self.mref[c] = self.zsum[c] / self.n
        for i in range(self.n):
            r2 = 0.0
            for c in range(self.d):
                v = self.zc[i, c] - self.mref[c]
                r2 += v * v
            self.tree[self.tree_size + i] = sqrt(r2)
        for p in range(self.tree_size - 1, 0, -1):
            self.tree[p] = self.tree[2 * p] if self.tree[2 * p] > self.tree[2 * p + 1] else self.tree[2 * p + 1]
        return self.tree[1]

    cdef double _observe_sup(self, bint exact) noexcept nogil:
        """Raise sup_distance to cover the current state; return the current distance if exact.

        Every r_i + ||mean - mref|| bounds ||z_i - mean||, so only agents with r_i above
        sup - ||mean - mref|| can beat the supremum: they are found through the tree and
        evaluated exactly. Skipped agents provably cannot raise it.
        """
        cdef int64_t i, c, count = 0
        cdef double drift = 0.0, v, r2, best = 0.0, threshold
        cdef Py_ssize_t p, top = 0
        cdef Py_ssize_t stack[130]
        if exact:
            best = self._rereference()
            if best > self.sup_distance:
                self.sup_distance = best
            return best
        for c in range(self.d):
            v = self.zsum[c] / self.n - self.mref[c]
            drift += v * v
        drift = sqrt(drift)
        if self.tree[1] + drift <= self.sup_distance:
            return NAN
        threshold = self.sup_distance - drift
        stack[0] = 1
        top = 1
        while top > 0:
            top -= 1
            p = stack[top]
            if self.tree[p] <= threshold:
                continue
            if p >= self.tree_size:
                i = p - self.tree_size
                if i >= self.n:  # padding (-inf) is never above a finite threshold: defensive
                    continue
                r2 = 0.0
                for c in range(self.d):
                    v = self.zc[i, c] - self.zsum[c] / self.n
                    r2 += v * v
                if r2 > best:
                    best = r2
                count += 1
            else:
                stack[top] = 2 * p
                stack[top + 1] = 2 * p + 1
                top += 2
        best = sqrt(best)
        if best > self.sup_distance:
            self.sup_distance = best
        if count > 16 + self.n // 8:  # the reference has drifted: re-centre (O(n d), amortised)
            self._rereference()
        return NAN

    cdef void _builtin_delta(self, int64_t i) noexcept nogil:
        cdef int64_t c
        cdef double norm = 0.0, v, scale, ref = 0.0
        cdef double wi = self.w[i]
        for c in range(self.d):
            self.delta[c] = 0.0
        if self.update == AWAY_FROM_MEAN:
            for c in range(self.d):
                self.mean[c] = self.zsum[c] / self.n
            for c in range(self.d):
                v = self.x[i, c] / wi - self.mean[c]
                self.delta[c] = v
                norm += v * v
                ref += self.mean[c] * self.mean[c]
            norm = sqrt(norm)
            # Below round-off the direction is noise: fall back to the deterministic camp step.
            if norm > 1e-12 * (1.0 + sqrt(ref)):
                for c in range(self.d):
                    self.delta[c] *= self.step / norm
                return
            for c in range(self.d):
                self.delta[c] = 0.0
        elif self.update == RANDOM:
            for c in range(self.d):
                v = normal(self.update_keys[i], self.k[i] * self.d + c)
                self.delta[c] = v
                norm += v * v
            norm = sqrt(norm)
            for c in range(self.d):
                self.delta[c] *= self.step / norm
            return
        elif self.update == QUADRATIC:
            for c in range(self.d):
                v = self.x[i, c] / wi - self.targets[i, c]
                self.delta[c] = v
                norm += v * v
            norm = sqrt(norm)
            scale = -self.lr * (self.L / norm if norm > self.L else 1.0)
            for c in range(self.d):
                self.delta[c] *= scale
            return
        # two-camp: agents 0..ceil(n/2)-1 step +alpha L e_1, the others -alpha L e_1
        self.delta[0] = self.step if i < (self.n + 1) // 2 else -self.step

    cdef inline void _act(self, int64_t i) noexcept nogil:
        """Agent i's parameters change: one more action of the clock."""
        self.actions += 1
        self.last_action[i] = self.actions

    cdef void _apply_update(self, int64_t i) noexcept nogil:
        cdef int64_t c
        cdef double norm = 0.0, wi = self.w[i]
        self._act(i)
        self._log(LOG_UPDATE, i, -1)
        self.last_update_time[i] = self.now
        for c in range(self.d):
            norm += self.delta[c] * self.delta[c]
            self.x[i, c] += wi * self.delta[c]
            self.injected_x[c] += wi * self.delta[c]
        norm = sqrt(norm)
        if norm > self.max_update_norm:
            self.max_update_norm = norm
        self.k[i] += 1
        self.events += 1
        self._touch(i)
        if self.k[i] == self.iterations:
            self.reached += 1
        if self.certificate:
            if self.K < self.wcap:
                # a new exact column: step in agent i's row (ref = 0 there: it is new)
                self.wC[i, self.K] = self.step
                self.wdm[self.K] = self.step / self.n
                self.dm_l1 += self.step / self.n
                self.wq[i] += self.step
                self.K += 1
                self.wops += 1
            else:
                self.g[i] += self.step
                if self.g[i] > self.gmax:
                    self.gmax = self.g[i]
            if self.k[i] == self.piece_start_k[i] + self.piece:
                self.piece_count += 1
        if self.protocol == PUSH_SUM:
            self._ps_send(i)
            self._ps_receive(i)
            self._resume(i)
        else:
            self._gala_after_update(i)

    # ------------------------------------------------------------------ faults

    cdef inline void _push_fault(self, double t, int kind, int64_t target) noexcept nogil:
        """Pending faults may free agents that look frozen, so no deadlock is declared meanwhile."""
        self.pending_faults += 1
        self._push(t, kind, target)

    cdef void _schedule_crash(self, int64_t i) noexcept nogil:
        """crash-rate: agent i's next crash, an exponential uptime from now (its own stream)."""
        cdef double up = sample(self.uptime, self.crash_keys[i], self.rc_count[i])
        self.rc_count[i] += 1
        self.rc_pending[i] = 1
        self._push_fault(self.now + up, EV_CRASH, i * 4 + 2 + (1 if isfinite(self.downtime) else 0))

    cdef void _crash(self, int64_t i, bint will_rejoin, bint random) noexcept nogil:
        cdef int64_t p
        self.events += 1
        if random:
            self.rc_pending[i] = 0
        if self.status[i] == CRASHED:
            return
        # A random crash hits an agent only while it has updates left (a finished learner exits).
        if random and self.k[i] >= self.iterations:
            return
        self._log(LOG_CRASH, i, -1)
        self._flog(FL_CRASH, i, -1)
        self.status[i] = CRASHED
        self.live -= 1
        self.crash_epoch[i] += 1
        if self.k[i] >= self.iterations:
            self.reached -= 1
        if self.certificate and self.k[i] >= self.piece_start_k[i] + self.piece:
            self.piece_count -= 1
        if will_rejoin:
            self.awaits[i] = 1
            self.awaiting += 1
            if random:
                self._push_fault(self.now + self.downtime, EV_REJOIN, self.crash_epoch[i] * self.n + i)
        if self.repair >= 0:
            # The survivors wait for it until the timeout detects the crash (EV_DETECT).
            self._push_fault(self.now + self.repair, EV_DETECT, self.crash_epoch[i] * self.n + i)
            return
        self.gone[i] = 1
        if self.protocol == PUSH_SUM:
            return
        # Receivers stop waiting for the crashed agent (senders already skip it: _edge_live).
        for p in range(self.out_indptr[i], self.out_indptr[i + 1]):
            self._wake(self.edge_dst[self.out_edges[p]])

    cdef bint _detect(self, int64_t i, int64_t epoch) noexcept nogil:
        """The timeout expired: is agent i still down from that crash? Then the topology is repaired."""
        self.events += 1
        if self.status[i] != CRASHED or self.crash_epoch[i] != epoch:
            return False
        self.detected[i] = 1
        self._log(LOG_REPAIR, i, -1)
        self._flog(FL_DETECT, i, -1)
        return True

    cdef int _rejoin(self, int64_t i, int64_t tag) noexcept nogil:
        """Agent i restarts: -1 if it is not down (or a later crash superseded this rejoin), else
        1 when the topology must be recomputed (it had been bypassed), 0 otherwise."""
        cdef int64_t p
        self.events += 1
        if self.status[i] != CRASHED or (tag > 0 and tag != self.crash_epoch[i]):
            return -1
        self.status[i] = RUNNING
        self.gone[i] = 0
        self.live += 1
        self.life[i] += 1
        self.stale[i] = 0
        if self.k[i] >= self.iterations:
            self.reached += 1
        if self.certificate and self.k[i] >= self.piece_start_k[i] + self.piece:
            self.piece_count += 1
        if self.awaits[i]:
            self.awaits[i] = 0
            self.awaiting -= 1
        for p in range(self.out_indptr[i], self.out_indptr[i + 1]):
            self.owed[self.out_edges[p]] = 0
        if self.detected[i]:
            self.detected[i] = 0
            return 1
        return 0

    cdef void _edge_off(self, int64_t e) noexcept nogil:
        """Edge e leaves the topology: an unread message on it is dropped (one in flight is lost on arrival)."""
        self.edge_on[e] = 0
        self.owed[e] = 0
        if self.slot[e] == ARRIVED:
            self.slot[e] = EMPTY
            self.dropped += 1
            self._log(LOG_LOST, self.edge_src[e], e)
            self._slot_freed(e)

    cdef void _switch_edges(self, signed char[::1] new_on) noexcept nogil:
        """Apply the repair rule's edge set: first the edges that go, then those that come (fresh)."""
        cdef int64_t e, E = self.edge_on.shape[0]
        for e in range(E):
            if self.edge_on[e] and not new_on[e]:
                self._edge_off(e)
        for e in range(E):
            if not self.edge_on[e] and new_on[e]:
                self.edge_on[e] = 1
                self.fresh[e] = 1

    cdef void _connect(self) noexcept nogil:
        """A new connection carries its live source's current parameters at once (so that a
        receiver never waits on an edge its sender, perhaps blocked, has no reason to write);
        then every blocked agent whose waits changed may mix."""
        cdef int64_t e, j, r, E = self.edge_on.shape[0]
        for e in range(E):
            if self.fresh[e]:
                self.fresh[e] = 0
                j = self.edge_src[e]
                if self.status[j] != CRASHED and self.slot[e] == EMPTY and self._edge_live(e, self.k[j]):
                    self._write_edge(j, e)
        for r in range(self.n):
            self._wake(r)

    cdef void _finish_rejoin(self, int64_t i) noexcept nogil:
        """Agent i's new process: empty receive buffers, the parameters of its lowest-numbered
        live in-neighbour (galasim.gossip.repair.rejoin_source), new connections, then it computes."""
        cdef int64_t e, p, c, source = -1, via = -1, cols
        cdef double old
        for e in range(self.in_indptr[i], self.in_indptr[i + 1]):
            if self.slot[e] == ARRIVED:
                self.slot[e] = EMPTY
                self.dropped += 1
                self._log(LOG_LOST, self.edge_src[e], e)
                self._slot_freed(e)
        for e in range(self.in_indptr[i], self.in_indptr[i + 1]):
            if self.edge_on[e] and not self.removed[e]:
                self.fresh[e] = 1
                if via < 0 and self.status[self.edge_src[e]] != CRASHED:
                    via = e
                    source = self.edge_src[e]
        for p in range(self.out_indptr[i], self.out_indptr[i + 1]):
            if self.edge_on[self.out_edges[p]]:
                self.fresh[self.out_edges[p]] = 1
        if source >= 0:
            for c in range(self.d):
                self.x[i, c] = self.x[source, c]
            self.w[i] = self.w[source]
            if self.certificate:
                cols = self.prod.shape[1]
                for c in range(cols):
                    self.prod[i, c] = self.prod[source, c]
                self.g[i] = self.g[source]
                for c in range(self.K):
                    old = self.wC[i, c]
                    self.wC[i, c] = self.wC[source, c]
                    self.wdm[c] += (self.wC[source, c] - old) / self.n
                self._column_row_changed(i)
            self._act(i)
            self._touch(i)
        self._log(LOG_REJOIN, i, via)
        self._flog(FL_REJOIN, i, source)
        self._connect()
        self._resume(i)
        if self.crash_rate > 0 and not self.rc_pending[i]:
            self._schedule_crash(i)

    cdef void _remove_link(self, int64_t e) noexcept nogil:
        self.events += 1
        self.removed[e] = 1
        self._log(LOG_LINK, self.edge_src[e], e)
        if self.protocol == PUSH_SUM:
            return
        self._wake(self.edge_dst[e])

    # ------------------------------------------------------------------ observation

    cdef _close_piece(self):
        """Every live agent finished the piece: fold its product into the certificate (BLAS)."""
        cdef int64_t r
        rows = np.concatenate([np.arange(self.n), self.n + np.flatnonzero(np.asarray(self.slot) != EMPTY)])
        self.cert_D = self.certifier.close(np.asarray(self.prod), np.asarray(self.g), rows.astype(np.int64), self.K)
        self.K = self.certifier.window.K
        self.dm_l1 = 0.0
        self.wops = 0
        self.piece = self.certifier.piece
        np.asarray(self.prod)[:] = np.eye(self.prod.shape[0])
        np.asarray(self.g)[:] = 0.0
        self.gmax = 0.0
        self.piece_count = 0
        for r in range(self.n):
            self.piece_start_k[r] = self.k[r]
        self.close_pending = False

    cdef void _mix_columns(self, int64_t i, int64_t m, double inv) noexcept nogil:
        """The mix on the window's columns, fused with the updates of dm, q_i and ||dm||_1 (the
        same operations, in the same order, as _column_row_changed after a plain mix)."""
        cdef int64_t l, e, b = -1, lo = self.in_indptr[i], hi = self.in_indptr[i + 1]
        cdef double old, v, dmv, q = 0.0, mm = 0.0
        if m == 1:
            for e in range(lo, hi):
                if self.slot[e] == ARRIVED:
                    b = self.n + e
            for l in range(self.K):
                old = self.wC[i, l]
                v = (old + self.wC[b, l]) * inv
                self.wC[i, l] = v
                dmv = self.wdm[l] + (v - old) / self.n
                self.wdm[l] = dmv
                q += fabs(v - self.wref[l])
                mm += fabs(dmv)
        else:
            for l in range(self.K):
                old = self.wC[i, l]
                v = old
                for e in range(lo, hi):
                    if self.slot[e] == ARRIVED:
                        v += self.wC[self.n + e, l]
                v *= inv
                self.wC[i, l] = v
                dmv = self.wdm[l] + (v - old) / self.n
                self.wdm[l] = dmv
                q += fabs(v - self.wref[l])
                mm += fabs(dmv)
        self.wq[i] = q
        self.dm_l1 = mm
        self.wops += 1

    cdef void _column_row_changed(self, int64_t i) noexcept nogil:
        """Agent i's window row changed (dm already updated): recompute q_i and ||dm||_1."""
        cdef int64_t l
        cdef double q = 0.0, m = 0.0
        for l in range(self.K):
            q += fabs(self.wC[i, l] - self.wref[l])
            m += fabs(self.wdm[l])
        self.wq[i] = q
        self.dm_l1 = m
        self.wops += 1

    cdef double _window_exact_max(self, double threshold) noexcept nogil:
        """max_a ||C_a - (ref + dm)||_1, the window's exact value, computed only for the first
        EXACT_AGENTS agents whose bound q_a + ||dm||_1 exceeds ``threshold`` (the others count
        with that bound)."""
        cdef int64_t a, l, left = EXACT_AGENTS
        cdef double best = 0.0, v
        for a in range(self.n):
            v = self.wq[a] + self.dm_l1
            if v > threshold and left > 0:
                left -= 1
                v = 0.0
                for l in range(self.K):
                    v += fabs(self.wC[a, l] - self.wref[l] - self.wdm[l])
            if v > best:
                best = v
        return best

    cdef void _recenter(self) noexcept nogil:
        """certificate.ColumnWindow.recenter: ref = the agents' mean column, dm = 0, q exact."""
        cdef int64_t a, l
        cdef double acc
        for l in range(self.K):  # beyond K, ref is 0 (ColumnWindow.close) and dm is set on use
            acc = 0.0
            for a in range(self.n):
                acc += self.wC[a, l]
            self.wref[l] = acc / self.n
            self.wdm[l] = 0.0
        for a in range(self.n):
            acc = 0.0
            for l in range(self.K):
                acc += fabs(self.wC[a, l] - self.wref[l])
            self.wq[a] = acc
        self.dm_l1 = 0.0
        self.wops = 0

    cdef double _window_max_q(self) noexcept nogil:
        cdef int64_t a
        cdef double best = 0.0
        for a in range(self.n):
            if self.wq[a] > best:
                best = self.wq[a]
        return best

    cdef double _diameter(self) noexcept nogil:
        """max_ij ||z_i - z_j|| of the current state (O(n^2 d), only for sampled states)."""
        cdef Py_ssize_t i, j, c
        cdef double best = 0.0, r2, v
        for i in range(self.n):
            for j in range(i + 1, self.n):
                r2 = 0.0
                for c in range(self.d):
                    v = self.x[i, c] / self.w[i] - self.x[j, c] / self.w[j]
                    r2 += v * v
                if r2 > best:
                    best = r2
        return sqrt(best)

    cdef void _end_batch(self) noexcept nogil:
        """All events at self.now are processed: observe the state, close pieces, test the end."""
        cdef double worst, bound = INFINITY
        cdef Py_ssize_t row, keep, i, c
        cdef bint sample
        if self.dirty:
            self.dirty = False
            self.obs_count += 1
            sample = self.obs_count % self.stride == 0
            worst = self._observe_sup(sample)
            if self.certificate:
                bound = self.cert_D + self._window_max_q() + self.dm_l1 + 2.0 * self.gmax
                if bound > self.cert_sup and self.dm_l1 > 0.0:
                    # A new supremum? Take the window's exact value: re-centre (O(agents x
                    # columns), at most once per `agents` row changes), else evaluate the
                    # agents that could set it (at most EXACT_AGENTS of them).
                    if self.wops >= self.n:
                        self._recenter()
                        bound = self.cert_D + self._window_max_q() + 2.0 * self.gmax
                    else:
                        bound = (self.cert_D + 2.0 * self.gmax
                                 + self._window_exact_max(self.cert_sup - self.cert_D - 2.0 * self.gmax))
                if bound > self.cert_sup:
                    self.cert_sup = bound
            if sample:
                row = self.traj_n
                self.traj[row, 0] = self.now
                self.traj[row, 1] = worst
                self.traj[row, 2] = self._diameter() if self.sample_diameter else NAN
                self.traj[row, 3] = bound if self.certificate else NAN
                if self.keep_states:
                    for i in range(self.n):
                        for c in range(self.d):
                            self.traj_states[row, i, c] = self.x[i, c] / self.w[i]
                self.traj_n += 1
                if self.traj_n == 2 * self.samples:
                    for keep in range(self.samples):
                        self.traj[keep, :] = self.traj[2 * keep + 1, :]
                        if self.keep_states:
                            self.traj_states[keep, :, :] = self.traj_states[2 * keep + 1, :, :]
                    self.traj_n = self.samples
                    self.stride *= 2
        if self.certificate and self.live > 0 and self.piece_count >= self.live:
            self.close_pending = True
        if self.reached >= self.live and self.awaiting == 0:
            self.finished = True

    # ------------------------------------------------------------------ the loop

    cdef int _loop(self) noexcept nogil:
        cdef Event ev
        cdef int64_t a, rc
        # the window's columns are not counted: the liveness checks keep main's cadence (counting
        # them made C7 find a run whose deadlock the engines declared one event apart)
        cdef int64_t unit = self.d + 1 + (self.prod.shape[1] if self.certificate else 0)
        while True:
            if self.oom:
                return RUN_NOMEM
            if self.heap.size == 0:
                self._end_batch()
                if not self.finished:
                    self.deadlock = True
                return RUN_DONE
            if self.heap.items[0].time != self.now:
                self._end_batch()
                if self.finished:
                    return RUN_DONE
                if self.close_pending:
                    return RUN_CLOSE
            self.work += unit
            if self.work >= self.next_check or self.events > self.max_events:
                self.next_check = self.work + CHECK_WORK
                return RUN_CHECK
            ev = heap_pop(&self.heap)
            self.now = ev.time
            if ev.kind == EV_UPDATE:
                a = ev.target % self.n
                if self.status[a] == CRASHED or ev.target // self.n != self.life[a]:
                    continue
                if self.update == CALLBACK:
                    self.cb_agent = a
                    return RUN_CALLBACK
                self._builtin_delta(a)
                self._apply_update(a)
            elif ev.kind == EV_ARRIVAL:
                if self.protocol == PUSH_SUM:
                    self._ps_arrival(ev.target)
                else:
                    self._arrival(ev.target)
            elif ev.kind == EV_LOST:
                self._lost(ev.target)
            elif ev.kind == EV_CRASH:
                self.pending_faults -= 1
                self._crash(ev.target // 4, ev.target & 1, ev.target & 2)
            elif ev.kind == EV_LINK:
                self.pending_faults -= 1
                self._remove_link(ev.target)
            elif ev.kind == EV_DETECT:
                self.pending_faults -= 1
                if self._detect(ev.target % self.n, ev.target // self.n):
                    self.fault_agent = ev.target % self.n
                    self.fault_op = FL_DETECT
                    return RUN_FAULT  # the repair rule is Python (galasim.gossip.repair)
            else:
                self.pending_faults -= 1
                a = ev.target % self.n
                rc = self._rejoin(a, ev.target // self.n)
                if rc == 1:
                    self.fault_agent = a
                    self.fault_op = FL_REJOIN
                    return RUN_FAULT
                if rc == 0:
                    self._finish_rejoin(a)

    def run(self):
        """Simulate until every live agent has done `iterations` updates; return the raw results."""
        cdef int64_t i, f
        cdef int rc
        started = time.perf_counter()
        for i in range(self.n):
            self._resume(i)
        for f in range(self.fault_time.shape[0]):
            if self.fault_kind[f] == FAULT_CRASH:
                self._push_fault(self.fault_time[f], EV_CRASH, self.fault_target[f] * 4 + self.fault_awaits[f])
            elif self.fault_kind[f] == FAULT_REJOIN:
                self._push_fault(self.fault_time[f], EV_REJOIN, self.fault_target[f])
            else:
                self._push_fault(self.fault_time[f], EV_LINK, self.fault_target[f])
        if self.crash_rate > 0:
            for i in range(self.n):
                self._schedule_crash(i)
        while True:
            with nogil:
                rc = self._loop()
            if rc == RUN_CALLBACK:
                self._callback_update(self.cb_agent)
                continue
            if rc == RUN_CLOSE:
                self._close_piece()
                continue
            if rc == RUN_FAULT:
                self._repair_topology()
                continue
            if rc == RUN_CHECK:
                PyErr_CheckSignals()  # Ctrl-C raises KeyboardInterrupt here
                if self._check():
                    continue
                break
            if rc == RUN_NOMEM:
                raise MemoryError("out of memory while growing the event heap, message pool or event log")
            if self.deadlock:
                self._stop("deadlock", liveness.frozen_agents(self._snapshot()))
            break
        return self._results(time.perf_counter() - started)

    def _repair_topology(self):
        """A detection or the rejoin of a bypassed agent: switch to the repair rule's edges."""
        dead = np.flatnonzero(np.asarray(self.detected)).tolist()
        new_on = np.zeros(self.edge_on.shape[0], dtype=np.int8)
        for pair in repair_rule.repaired_edges(self.orig_pairs, dead):
            new_on[self.edge_id[pair]] = 1
        self._switch_edges(new_on)
        if self.fault_op == FL_REJOIN:
            self._finish_rejoin(self.fault_agent)
        else:
            self._connect()

    def _snapshot(self):
        return liveness.Snapshot(
            np.asarray(self.status), np.asarray(self.slot), np.asarray(self.owed),
            np.asarray(self.removed), np.asarray(self.k), np.asarray(self.in_indptr),
            np.asarray(self.edge_src), np.asarray(self.edge_dst), np.asarray(self.out_indptr),
            np.asarray(self.out_edges), np.asarray(self.active), bool(self.mix_any),
            bool(self.resend), np.asarray(self.edge_on), np.asarray(self.gone))

    def _stop(self, reason, frozen):
        self.stopped = reason
        self.deadlock = reason == "deadlock"
        if reason == "deadlock":
            self.diagnosis = liveness.diagnose(self._snapshot(), frozen, self.iterations)
        else:
            self.diagnosis = liveness.starvation(
                np.asarray(self.k), np.asarray(self.last_update_time), np.asarray(self.status),
                self.iterations, self.events, self.max_events)

    def _check(self):
        """Between two slices of the loop: may the run go on? (the twin of the reference's)"""
        if self.events > self.max_events:
            self._stop("event-budget", None)
            return False
        k = np.asarray(self.k)
        stalled = (np.asarray(self.status) == BLOCKED) & (k < self.iterations)
        if self.pending_faults == 0 and self.check_k is not None and (stalled & (k == self.check_k)).any():
            frozen = liveness.frozen_agents(self._snapshot())
            if any(self.k[r] < self.iterations for r in frozen):
                self._stop("deadlock", frozen)
                return False
        self.check_k = k.copy()
        return True

    cdef _callback_update(self, int64_t i):
        params = np.asarray(self.x[i]) / self.w[i]
        np.asarray(self.delta)[:] = callback_delta(self.callback, i, self.k[i], params)
        self._apply_update(i)

    def _results(self, double wall):
        cdef Py_ssize_t stride = self.d + 1, h
        cdef unsigned char[::1] log_bytes
        cdef int64_t m
        mass_x = np.asarray(self.x).sum(axis=0) + np.asarray(self.acc_x).sum(axis=0)
        mass_w = float(np.asarray(self.w).sum() + np.asarray(self.acc_w).sum())
        if self.protocol == PUSH_SUM:
            for h in range(self.heap.size):
                if self.heap.items[h].kind == EV_ARRIVAL:
                    m = self.heap.items[h].target
                    mass_x += np.array([self.pool_x[m * stride + c] for c in range(self.d)])
                    mass_w += self.pool_x[m * stride + self.d]
        traj = np.asarray(self.traj[: self.traj_n]).copy()
        if self.keep_states:
            traj[:, 2] = [diameter(state) for state in np.asarray(self.traj_states[: self.traj_n])]
        log = np.zeros(self.log_n, dtype=LOG_DTYPE)
        assert LOG_DTYPE.itemsize == sizeof(LogEntry)
        log_bytes = log.view(np.uint8)
        if self.log_n:
            memcpy(&log_bytes[0], self.log, self.log_n * sizeof(LogEntry))
        faults = np.zeros(self.flog_n, dtype=LOG_DTYPE)
        log_bytes = faults.view(np.uint8)
        if self.flog_n:
            memcpy(&log_bytes[0], self.flog, self.flog_n * sizeof(LogEntry))
        return {
            "x": np.asarray(self.x).copy(),
            "w": np.asarray(self.w).copy(),
            "iterations": np.asarray(self.k).copy(),
            "crashed": np.asarray(self.status) == CRASHED,
            "sup_distance": self.sup_distance,
            "certificate": self.cert_sup if self.certificate else np.nan,
            "pieces": self.certifier.closed if self.certificate else 0,
            "max_staleness": int(self.max_stale),
            "max_message_age": int(self.max_age),
            "virtual_time": self.now,
            "events": int(self.events),
            "sent": int(self.sent),
            "skipped": int(self.skipped),
            "dropped": int(self.dropped),
            "deadlock": bool(self.deadlock),
            "stopped": self.stopped,
            "diagnosis": self.diagnosis,
            "actions": int(self.actions),
            "tau_actions": int(self.tau_actions),
            "max_fresh": int(self.max_fresh),
            "last_use": np.asarray(self.last_use).copy(),
            "max_avoid": np.asarray(self.max_avoid).copy(),
            "removed": np.asarray(self.removed).astype(bool),
            "edge_on": np.asarray(self.edge_on).astype(bool),
            "faults": faults,
            "event_log": log,
            "max_update_norm": self.max_update_norm,
            "mass_x": mass_x,
            "mass_w": mass_w,
            "injected_x": np.asarray(self.injected_x).copy(),
            "lost_w": self.lost_w,
            "trajectory": traj,
            "wall_time": wall,
        }


def hold_benchmark(Py_ssize_t pending, int64_t events, uint64_t seed=0):
    """Scheduler-only throughput: the classic "hold" model on the C heap.

    Keeps `pending` events in the heap; each step pops the earliest and pushes a successor an
    exponential time later. Returns the number of pop+push pairs done (== events).
    """
    cdef EventHeap heap
    cdef Event ev
    cdef int64_t i
    cdef uint64_t key = stream_key(seed, S_DELAY, 0)
    heap.capacity = max(16, 2 * pending)
    heap.size = 0
    heap.next_seq = 0
    heap.items = <Event*>malloc(heap.capacity * sizeof(Event))
    if heap.items == NULL:
        raise MemoryError("cannot allocate the event heap")
    try:
        with nogil:
            for i in range(pending):
                heap_push(&heap, -log(uniform(key, i)), EV_UPDATE, i)
            for i in range(events):
                ev = heap_pop(&heap)
                heap_push(&heap, ev.time - log(uniform(key, pending + i)), EV_UPDATE, ev.target)
    finally:
        free(heap.items)
    return events
