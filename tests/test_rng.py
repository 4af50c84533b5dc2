"""The C streams, the Python streams and the NumPy streams draw the same numbers."""
import numpy as np
import pytest

from galasim._scheduler import draw
from galasim.sim import rng
from galasim.sim.models import parse_distribution

SPECS = ["constant:2", "exponential:1.5", "uniform:0.5,1.5", "lognormal:1,0.5", "pareto:1,2.5"]


@pytest.mark.parametrize("spec", SPECS)
def test_c_python_and_numpy_streams_agree(spec):
    code, p1, p2 = parse_distribution(spec, "delay").engine_params()
    seed, stream = 12345, rng.DELAY
    entities, counters = np.arange(7)[:, None], np.arange(50)[None, :]
    vectorised = rng.sample_array(code, p1, p2, seed, stream, entities, counters)
    for e in range(7):
        key = rng.stream_key(seed, stream, e)
        for c in range(50):
            python = rng.sample(code, p1, p2, key, c)
            assert draw(code, p1, p2, seed, stream, e, c) == python
            assert vectorised[e, c] == pytest.approx(python, rel=1e-14)


@pytest.mark.parametrize("spec, mean", [("exponential:2", 2.0), ("uniform:1,3", 2.0),
                                        ("lognormal:2,0.5", 2.0), ("pareto:2,3", 2.0)])
def test_distributions_have_the_mean_the_grammar_promises(spec, mean):
    code, p1, p2 = parse_distribution(spec, "delay").engine_params()
    draws = rng.sample_array(code, p1, p2, 7, rng.DELAY, np.arange(200)[:, None], np.arange(1000)[None, :])
    assert draws.min() >= 0
    # 200k draws: the standard error is below 1% of the mean for all of these.
    assert draws.mean() == pytest.approx(mean, rel=0.03)


def test_streams_differ_by_seed_stream_and_entity():
    key = rng.stream_key(1, rng.COMPUTE, 0)
    base = [rng.uniform(key, c) for c in range(5)]
    assert base != [rng.uniform(rng.stream_key(2, rng.COMPUTE, 0), c) for c in range(5)]
    assert base != [rng.uniform(rng.stream_key(1, rng.DELAY, 0), c) for c in range(5)]
    assert base != [rng.uniform(rng.stream_key(1, rng.COMPUTE, 1), c) for c in range(5)]
    assert all(0.0 < u < 1.0 for u in base)
