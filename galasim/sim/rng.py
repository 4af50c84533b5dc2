"""Counter-based random streams shared, draw for draw, by the Cython scheduler and the reference.

A draw is a pure function of ``(seed, stream, entity, counter)``: a splitmix64 hash, so both
simulators obtain identical numbers without sharing generator state, in any event order, and a
result is a pure function of (config, seed). ``ext/_scheduler.pyx`` implements the same functions
in C; ``tests/test_rng.py`` checks the three implementations (C, Python, NumPy) agree.
"""
from __future__ import annotations

import math

import numpy as np

from galasim.sim.models import CONSTANT, EXPONENTIAL, LOGNORMAL, PARETO, UNIFORM

MASK = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
MUL1 = 0xBF58476D1CE4E5B9
MUL2 = 0x94D049BB133111EB
TWO_PI = 6.283185307179586
INV_2_53 = 1.0 / 9007199254740992.0

# Stream identifiers (must match ext/_scheduler.pyx).
COMPUTE, DELAY, DROP, UPDATE, ALLREDUCE_DELAY, CRASH = 1, 2, 3, 4, 5, 6


def mix64(z: int) -> int:
    z = ((z ^ (z >> 30)) * MUL1) & MASK
    z = ((z ^ (z >> 27)) * MUL2) & MASK
    return z ^ (z >> 31)


def stream_key(seed: int, stream: int, entity: int) -> int:
    return mix64((mix64((seed * GOLDEN + stream) & MASK) + entity * GOLDEN) & MASK)


def uniform(key: int, counter: int) -> float:
    """A uniform draw in the open interval (0, 1)."""
    bits = mix64((key + counter * GOLDEN) & MASK)
    return ((bits >> 11) + 0.5) * INV_2_53


def normal(key: int, counter: int) -> float:
    """A standard normal draw (Box-Muller on the uniform draws 2*counter and 2*counter+1)."""
    u1 = uniform(key, 2 * counter)
    u2 = uniform(key, 2 * counter + 1)
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(TWO_PI * u2)


def sample(code: int, p1: float, p2: float, key: int, counter: int) -> float:
    """A draw of distribution ``code`` with engine parameters ``(p1, p2)`` (see models.Distribution)."""
    if code == CONSTANT:
        return p1
    if code == EXPONENTIAL:
        return -p1 * math.log(uniform(key, counter))
    if code == UNIFORM:
        return p1 + (p2 - p1) * uniform(key, counter)
    if code == LOGNORMAL:
        return math.exp(p1 + p2 * normal(key, counter))
    if code == PARETO:
        return p1 * uniform(key, counter) ** (-1.0 / p2)
    raise ValueError(f"unknown distribution code {code}")


# ---- the same functions on NumPy uint64 arrays (wrap-around multiplication), for bulk draws ----

def _mix64_np(z: np.ndarray) -> np.ndarray:
    z = (z ^ (z >> np.uint64(30))) * np.uint64(MUL1)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(MUL2)
    return z ^ (z >> np.uint64(31))


def uniform_array(seed: int, stream: int, entities: np.ndarray, counters: np.ndarray) -> np.ndarray:
    """``uniform(stream_key(seed, stream, e), c)`` for broadcast arrays of entities and counters."""
    with np.errstate(over="ignore"):
        base = np.uint64(mix64((seed * GOLDEN + stream) & MASK))
        keys = _mix64_np(base + np.asarray(entities, dtype=np.uint64) * np.uint64(GOLDEN))
        bits = _mix64_np(keys + np.asarray(counters, dtype=np.uint64) * np.uint64(GOLDEN))
    return ((bits >> np.uint64(11)).astype(np.float64) + 0.5) * INV_2_53


def normal_array(seed: int, stream: int, entities: np.ndarray, counters: np.ndarray) -> np.ndarray:
    """Vectorised :func:`normal` (Box-Muller on the uniform draws 2c and 2c+1)."""
    u1 = uniform_array(seed, stream, entities, 2 * counters)
    u2 = uniform_array(seed, stream, entities, 2 * counters + 1)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(TWO_PI * u2)


def sample_array(code: int, p1: float, p2: float, seed: int, stream: int,
                 entities: np.ndarray, counters: np.ndarray) -> np.ndarray:
    """Vectorised :func:`sample` over broadcast entities x counters."""
    entities, counters = np.broadcast_arrays(np.asarray(entities), np.asarray(counters))
    if code == CONSTANT:
        return np.full(entities.shape, p1)
    if code == EXPONENTIAL:
        return -p1 * np.log(uniform_array(seed, stream, entities, counters))
    if code == UNIFORM:
        return p1 + (p2 - p1) * uniform_array(seed, stream, entities, counters)
    if code == LOGNORMAL:
        return np.exp(p1 + p2 * normal_array(seed, stream, entities, counters))
    if code == PARETO:
        return p1 * uniform_array(seed, stream, entities, counters) ** (-1.0 / p2)
    raise ValueError(f"unknown distribution code {code}")
