"""The data-dependent certificate (galasim/sim/certificate.py): horizon-independent, tight, proven."""
from __future__ import annotations

import numpy as np
import pytest

import galasim
from galasim.sim import certificate
from galasim.sim.certificate import PiecewiseCertificate, piece_length


def _cert(**config):
    return galasim.simulate(**config).summary


@pytest.mark.parametrize("agents,delays", [(8, 1.0), (16, 0.0)])
def test_certificate_does_not_grow_with_the_horizon_on_a_stationary_ring(agents, delays):
    # These rings mix in far fewer than 1,000 iterations, so by then the run is stationary. The
    # old bookkeeping (pieces of iterations/48) grew 3.7x (ring 8) and 2.0x (ring 16) to 20,000.
    short = _cert(topology="ring", agents=agents, delays=delays, iterations=1000)
    long = _cert(topology="ring", agents=agents, delays=delays, iterations=20000)
    assert long["certificate"] <= 1.5 * short["certificate"]


def test_piece_length_depends_on_the_state_size_only():
    assert piece_length(32) == piece_length(32)
    assert piece_length(10) >= 1
    cert = PiecewiseCertificate(40)
    assert cert.piece == piece_length(40)


def test_certificate_is_tighter_than_before_on_a_default_study_cell():
    # The default study (galasim sweep): GALA, directed ring of 16, 5,000 iterations. Main had
    # certificate / empirical = 21-30 on these cells; this bookkeeping gives 12-23 (13.9 on this cell).
    s = _cert(topology="ring", protocol="gala", agents=16, delays=8, iterations=5000, seed=0)
    assert s["empirical"] <= s["certificate"] <= 15 * s["empirical"]


@pytest.mark.xfail(strict=True, reason="issue 6 goal not reached: the Dobrushin (diameter) route "
                   "gives certificate / empirical 12-23 on the default 16-agent cells; the exact "
                   "worst case over update directions is itself 3.5-7x the two-camp empirical")
def test_certificate_within_10x_on_every_default_16_agent_cell():
    for delays in (0, 0.5, 1, 2, 4, 8):
        s = _cert(topology="ring", protocol="gala", agents=16, delays=delays, iterations=5000, seed=0)
        assert s["certificate"] <= 10 * s["empirical"], delays


RANDOM = [
    {"topology": "ring", "agents": 5, "delays": 3.0, "iterations": 700},
    {"topology": "ring", "agents": 12, "delays": 0.5, "compute": "lognormal:1,0.8", "iterations": 500},
    {"topology": "exponential", "protocol": "gala-resend", "agents": 8, "delays": 2.0, "iterations": 400},
    {"topology": "torus", "protocol": "gala-resend", "agents": 9, "delays": 1.0, "iterations": 300,
     "updates": "random"},
    {"topology": "one-peer-exponential", "agents": 8, "delays": 1.0, "iterations": 500,
     "updates": "away-from-mean"},
    {"topology": "ring", "agents": 7, "delays": 1.0, "iterations": 600, "faults": "drop:0.2",
     "protocol": "gala-resend", "updates": "quadratic"},
]


@pytest.mark.parametrize("config", RANDOM, ids=lambda c: f"{c['topology']}-{c['agents']}")
@pytest.mark.parametrize("seed", [0, 3])
def test_certificate_holds_at_every_sampled_time(config, seed):
    result = galasim.simulate(**config, seed=seed, certificate=True, trajectory_samples=400)
    s, traj = result.summary, result.trajectory
    assert s["certificate_pieces"] >= 4
    assert s["empirical"] <= s["certificate"] * (1 + 1e-9)
    assert (traj["distance"] <= traj["certificate"] * (1 + 1e-9)).all()
    assert (traj["diameter"] <= traj["certificate"] * (1 + 1e-9)).all()


def test_engines_agree_on_a_run_with_many_merged_pieces():
    config = {"topology": "ring", "agents": 6, "iterations": 1500, "delays": 1.0, "seed": 5}
    fast = galasim.simulate(**config)
    ref = galasim.simulate(engine="reference", **config)
    assert fast.summary["certificate_pieces"] == ref.summary["certificate_pieces"] > 50
    assert fast.summary["certificate"] == pytest.approx(ref.summary["certificate"], rel=0, abs=1e-12)
    np.testing.assert_allclose(fast.trajectory["certificate"], ref.trajectory["certificate"], rtol=0, atol=1e-12)


def _tau(M: np.ndarray) -> float:
    return float(0.5 * np.abs(M[:, None, :] - M[None, :, :]).sum(axis=2).max())


def test_histogram_bound_dominates_the_unmerged_sum():
    # (*) with every piece kept separately is sum_j tau_1(Phi(now, end_j)) I_j; merging and folding
    # may only enlarge it (tau_1 is monotone along products).
    rng = np.random.default_rng(0)
    size, closes = 6, 300
    cert = PiecewiseCertificate(size, piece=1)
    kept: list[tuple[np.ndarray, float]] = []
    rows = np.arange(size)
    for _ in range(closes):
        P = rng.random((size, size)) ** 6
        P /= P.sum(axis=1, keepdims=True)
        g = rng.random(size)
        injection = float(np.sort(g)[-1] + np.sort(g)[-2])
        kept = [(P @ M, w) for M, w in kept]
        exact = sum(_tau(M) * w for M, w in kept) + injection
        bound = cert.close(P, g, rows)
        assert bound >= exact * (1 - 1e-12)
        kept.append((np.eye(size), injection))
    assert cert.entries <= certificate.MAX_ENTRIES
