"""Synchronous all-reduce (A2C's data-parallel baseline) as a round model on the shared draws.

Round k: every agent computes its update (compute time ``c_ik``, the same stream GALA's agent i uses
for its k-th iteration); the collective then costs the slowest member's message delay
(``max_i d_ik`` on the all-reduce delay stream); all agents apply the averaged update. Agents never
differ, so the consensus distance is exactly 0. Because nothing couples agents inside a round, the
round times are closed-form: they are computed vectorised here and used both to simulate the
protocol and as the baseline GALA's throughput is compared with.
"""
from __future__ import annotations

import math
import time

import numpy as np

from galasim.sim import rng
from galasim.sim.models import CALLBACK, QUADRATIC, RANDOM, callback_delta
from galasim.sim.spec import EngineSpec

_CHUNK = 256  # rounds drawn at once: bounds memory at n x 256 doubles


def _chunks(spec: EngineSpec):
    """Yield ``(ks, compute, delay)`` for up to ``_CHUNK`` rounds: arrays of shape (n, rounds)."""
    rounds = spec.iterations
    agents = np.arange(spec.n)[:, None]
    for start in range(0, rounds, _CHUNK):
        ks = np.arange(start, min(rounds, start + _CHUNK))[None, :]
        compute = spec.agent_factor[:, None] * rng.sample_array(*spec.compute, spec.seed, rng.COMPUTE, agents, ks)
        delay = rng.sample_array(*spec.delay, spec.seed, rng.ALLREDUCE_DELAY, agents, ks)
        yield ks[0], compute, delay


def round_times(spec: EngineSpec):
    """Yield ``(k, compute, latency)`` per round: per-agent compute times and the collective delay."""
    for ks, compute, delay in _chunks(spec):
        for j, k in enumerate(ks):
            yield int(k), compute[:, j], float(delay[:, j].max())


def makespan(spec: EngineSpec) -> float:
    """Virtual time all-reduce needs for ``spec.iterations`` rounds on the same draws."""
    total = 0.0
    for _, compute, delay in _chunks(spec):
        for seconds in (compute.max(axis=0) + delay.max(axis=0)).tolist():
            total += seconds  # round by round, in order: the same sum as the round model's
    return total


def _deltas(spec: EngineSpec, x: np.ndarray, k: int) -> np.ndarray:
    """Every agent's update at the (common) parameters x, one row per agent."""
    n, d, step = spec.n, spec.dim, spec.step
    if spec.update == CALLBACK:
        return np.array([callback_delta(spec.callback, i, k, x.copy()) for i in range(n)])
    if spec.update == RANDOM:
        g = rng.normal_array(spec.seed, rng.UPDATE, np.arange(n)[:, None], k * d + np.arange(d)[None, :])
        return g * (step / np.linalg.norm(g, axis=1, keepdims=True))
    if spec.update == QUADRATIC:
        grad = x[None, :] - spec.targets
        norm = np.linalg.norm(grad, axis=1, keepdims=True)
        return -spec.lr * grad * np.where(norm > spec.L, spec.L / np.maximum(norm, 1e-300), 1.0)
    # two-camp, and away-from-mean (its direction is undefined at consensus: the camp step)
    delta = np.zeros((n, d))
    delta[: (n + 1) // 2, 0] = step
    delta[(n + 1) // 2:, 0] = -step
    return delta


def run(spec: EngineSpec) -> dict:
    """Simulate all-reduce; returns the same raw dictionary as the gossip engines."""
    started = time.perf_counter()
    n, d = spec.n, spec.dim
    x = np.zeros(d)
    now, rounds_done, deadlock = 0.0, 0, False
    max_norm = 0.0
    traj = []
    first_crash = float(spec.crash_time.min()) if n else math.inf
    for k, compute, latency in round_times(spec):
        end = now + float(compute.max()) + latency
        if first_crash < end:  # a crashed member never joins the collective: everyone waits forever
            now, deadlock = first_crash, True
            break
        deltas = _deltas(spec, x, k)
        max_norm = max(max_norm, float(np.linalg.norm(deltas, axis=1).max()))
        x = x + deltas.mean(axis=0)
        now, rounds_done = end, rounds_done + 1
        traj.append([now, 0.0, 0.0, 0.0])
    stride = max(1, len(traj) // max(2, spec.samples))
    states = np.tile(x, (n, 1))
    return {
        "x": states,
        "w": np.ones(n),
        "iterations": np.full(n, rounds_done, dtype=np.int64),
        "crashed": spec.crash_time <= now,
        "sup_distance": 0.0,
        "certificate": 0.0,
        "pieces": 0,
        "max_staleness": 0,
        "max_message_age": 0,
        "virtual_time": now,
        "events": 4 * n * rounds_done,  # per round and agent: update, send, arrival, mix
        "sent": n * rounds_done,
        "skipped": 0,
        "dropped": 0,
        "deadlock": deadlock,
        "stopped": "deadlock" if deadlock else "",
        "diagnosis": (f"agent {int(np.argmin(spec.crash_time))} crashed at t={first_crash:g}: every "
                      f"later all-reduce round waits for it forever (after {rounds_done} rounds)"
                      if deadlock else ""),
        "removed": np.zeros(len(spec.edge_src), dtype=bool),
        "max_update_norm": max_norm,
        "mass_x": states.sum(axis=0),
        "mass_w": float(n),
        "injected_x": states.sum(axis=0),
        "lost_w": 0.0,
        "trajectory": np.array(traj[::stride], dtype=float).reshape(-1, 4),
        "wall_time": time.perf_counter() - started,
    }
