"""The claim checks of proofs_checks/ and `galasim check`.

Every check must pass on the current simulator in quick mode, and must *fail* when its claim is
broken (a lying summary, a too-small certificate, a non-linear scaling...), so that none of them is
a tautology. Plus the Markdown report, the command line and the trajectory example.
"""
from __future__ import annotations

import argparse
import functools
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import proofs_checks
from proofs_checks import c1_contraction as c1
from proofs_checks import c2_bound as c2
from proofs_checks import c3_scaling as c3
from proofs_checks import c4_necessity as c4
from proofs_checks import c5_efficiency as c5
from proofs_checks import c6_deadlock as c6
from proofs_checks import common

REPO = Path(__file__).resolve().parent.parent
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
           MPLBACKEND="Agg", OPENBLAS_NUM_THREADS="1")


@functools.lru_cache(maxsize=None)
def quick_result(name: str) -> common.CheckResult:
    """Each check runs once per test session, in quick mode."""
    return proofs_checks.load(name).run(quick=True, seed=0)


# ------------------------------------------------------------------------------------ every claim


@pytest.mark.parametrize("name", list(proofs_checks.CHECKS))
def test_quick_check_passes(name):
    result = quick_result(name)
    assert result.passed, "\n".join(result.failures)
    assert result.name == name and result.claim == proofs_checks.load(name).CLAIM
    assert not result.failures
    assert len(result.table) > 0 and result.table["ok"].astype(bool).all()


@pytest.mark.parametrize("name", list(proofs_checks.CHECKS))
def test_plots_are_drawn(name, tmp_path):
    result = quick_result(name)
    saved = common.save_plots(result, tmp_path)
    assert saved, f"{name} draws no plot"
    for path, _ in saved:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


# ------------------------------------------------------------------------------------ C1


def test_c1_fails_when_contraction_overstates_the_rate(monkeypatch):
    real = c1.mixing.contraction

    def optimistic(obj, *args, **kwargs):
        c = real(obj, *args, **kwargs)
        return c._replace(q=0.9 * c.q)  # products claimed to contract faster than they do

    monkeypatch.setattr(c1.mixing, "contraction", optimistic)
    row, _ = c1.measure_case(c1.Case("ring n=8", c1.topo.ring(8), True, math.cos(math.pi / 8)))
    table = pd.DataFrame([row])
    assert row["max e/(C q^m)"] > 1.5
    assert not c1.judge_matrices(table).all()
    passed, failures = c1.evaluate(table, None)
    assert not passed and "exceeds C q^m" in failures[0]


def test_c1_fails_when_the_constant_is_too_small(monkeypatch):
    real = c1.mixing.contraction
    monkeypatch.setattr(c1.mixing, "contraction", lambda obj, *a, **k: real(obj, *a, **k)._replace(C=0.5))
    row, _ = c1.measure_case(c1.Case("torus n=8", c1.topo.build("torus", 8), True))
    assert not c1.judge_matrices(pd.DataFrame([row])).all()


def test_c1_products_match_closed_forms():
    # The direct products of the directed ring: ||W^m - 11^T/n||_2 = cos(pi/n)^m exactly (W normal).
    mats = c1.period_matrices(c1.topo.ring(8))
    errors = c1.product_errors(mats, 0, 40)
    np.testing.assert_allclose(errors, np.cos(np.pi / 8) ** np.arange(41), rtol=1e-10)
    # One-peer exponential on 8 agents averages exactly after its period of 3.
    mats = c1.period_matrices(c1.topo.one_peer_exponential(8))
    for start in range(3):
        assert c1.product_errors(mats, start, 3)[3] < 1e-14


def test_c1_slem_and_realised_predicates_reject_violations():
    row, _ = c1.measure_case(c1.Case("hypercube n=8", c1.topo.build("hypercube", 8), True, 0.5))
    assert c1.judge_matrices(pd.DataFrame([row])).all()
    bad = dict(row, **{"|q - SLEM|": 1e-3})
    assert not c1.judge_matrices(pd.DataFrame([bad])).all()
    wrong_closed_form = dict(row, **{"closed form": 0.4})
    assert not c1.judge_matrices(pd.DataFrame([wrong_closed_form])).all()
    realised = pd.DataFrame([
        {"topology": "ring", "agents": 8, "delays": 0.0, "pieces": 40, "window w (pieces)": "none",
         "max tau1 over w-windows": 1.0},
        {"topology": "ring", "agents": 8, "delays": 0.0, "pieces": 40, "window w (pieces)": 30,
         "max tau1 over w-windows": 0.9},
        {"topology": "ring", "agents": 8, "delays": 0.0, "pieces": 40, "window w (pieces)": 3,
         "max tau1 over w-windows": 0.9},
    ])
    assert c1.judge_realised(realised).tolist() == [False, False, True]


def test_c1_window_contraction_on_synthetic_pieces():
    n = 4
    rows = np.arange(n)
    swap = np.eye(n)[[1, 0, 3, 2]]  # a permutation: never contracts
    average = np.full((n, n), 1.0 / n)
    w, worst, single = c1.window_contraction([(swap, rows)] * 6)
    assert w is None and worst == 1.0 and single == 0.0
    w, worst, _ = c1.window_contraction([(swap, rows), (average, rows)] * 3)
    assert w == 2 and worst == pytest.approx(0.0, abs=1e-15)


# ------------------------------------------------------------------------------------ C2


def _small_c2(monkeypatch):
    configs = [
        {"topology": "ring", "agents": 8, "delays": 1.0, "updates": "two-camp", "sync_freq": 4,
         "iterations": 150, "seed": 0},
        {"topology": "torus", "protocol": "gala-resend", "agents": 8, "delays": 0.0,
         "updates": "away-from-mean", "sync_freq": 1, "iterations": 150, "seed": 1},
    ]
    monkeypatch.setattr(c2, "grid_configs", lambda quick, seed: configs)
    monkeypatch.setattr(c2, "random_configs", lambda quick, seed: [])


def _lying_simulate(monkeypatch, edit):
    real = c2.simulate

    def fake(**kwargs):
        result = real(**kwargs)
        edit(result)
        return result

    monkeypatch.setattr(c2, "simulate", fake)


def test_c2_passes_on_the_real_simulator(monkeypatch):
    _small_c2(monkeypatch)
    assert c2.run(quick=True).passed


def test_c2_fails_when_the_certificate_is_below_the_empirical_distance(monkeypatch):
    _small_c2(monkeypatch)

    def shrink(result):  # a certificate too small, while the summary still claims the bound holds
        result.summary["certificate"] = 0.5 * result.summary["empirical"]
        result.summary["bound_holds"] = True

    _lying_simulate(monkeypatch, shrink)
    result = c2.run(quick=True)
    assert not result.passed
    assert any("empirical" in f and "> certificate" in f for f in result.failures)


def test_c2_fails_when_epsilon_is_below_the_empirical_distance(monkeypatch):
    _small_c2(monkeypatch)

    def shrink(result):
        result.summary["epsilon"] = 0.5 * result.summary["empirical"]

    _lying_simulate(monkeypatch, shrink)
    result = c2.run(quick=True)
    assert not result.passed and any("> epsilon" in f for f in result.failures)


def test_c2_fails_when_the_certificate_in_force_is_exceeded_pointwise(monkeypatch):
    _small_c2(monkeypatch)

    def shrink(result):  # the suprema are fine, but at some time the bound in force is exceeded
        result.trajectory["certificate"] = result.trajectory["distance"] * 0.9

    _lying_simulate(monkeypatch, shrink)
    result = c2.run(quick=True)
    assert not result.passed and any("certificate in force" in f for f in result.failures)


def test_c2_fails_when_galasim_itself_says_the_bound_fails(monkeypatch):
    _small_c2(monkeypatch)
    _lying_simulate(monkeypatch, lambda r: r.summary.update(bound_holds=False))
    assert not c2.run(quick=True).passed


def test_c2_fails_when_epsilon_constants_disagree_with_the_event_log(monkeypatch):
    _small_c2(monkeypatch)
    _lying_simulate(monkeypatch, lambda r: r.summary.update(epsilon_tau=r.summary["epsilon_tau"] - 1))
    result = c2.run(quick=True)
    assert not result.passed and any("re-derived from the event log" in f for f in result.failures)


def test_c2_is_not_vacuous():
    details = quick_result("C2").details.copy()
    # Unclaimed runs are not judged, but a grid where nothing is claimed is a failure.
    details["assumptions_hold"] = False
    passed, failures = c2.evaluate(details)
    assert not passed and any("nothing was checked" in f for f in failures)


def test_c2_grid_covers_every_value_in_quick_mode():
    quick = c2.grid_configs(True, 0)
    for key, values in c2.GRID.items():
        assert {c[key] for c in quick} == set(values)
    assert len(c2.grid_configs(False, 0)) == 2 * math.prod(len(v) for v in c2.GRID.values())
    assert all(isinstance(c["topology"], c2.topo.nx.DiGraph) or c2.topo.is_schedule(c["topology"])
               for c in c2.random_configs(True, 0))


# ------------------------------------------------------------------------------------ C3


def test_c3_fails_when_the_distance_is_not_linear_in_alpha_l(monkeypatch):
    real = c3.simulate

    def offset(**kwargs):  # an additive offset breaks proportionality
        result = real(**kwargs)
        result.summary["empirical"] += 1e-3
        return result

    monkeypatch.setattr(c3, "simulate", offset)
    config = c3.configs(True, 0)[0]
    row = c3.measure(config, "two-camp", "lr")
    assert row["dev empirical"] > 1e-3
    table = pd.DataFrame([row])
    assert not c3.judge(table).all()
    assert not c3.evaluate(table)[0]


def test_c3_predicate_asserts_only_what_is_linear():
    rows = quick_result("C3").table
    quadratic = rows[~rows["asserts empirical"]]
    assert len(quadratic) and (quadratic["dev empirical"] > 1e-3).any()  # genuinely nonlinear
    assert c3.judge(quadratic).all()
    broken = quadratic.copy()
    broken["dev certificate"] = 1e-6  # the certificate of every model must scale exactly
    assert not c3.judge(broken).any()
    linear = rows[rows["asserts empirical"]].copy()
    linear["dev trajectory"] = 1e-7
    assert not c3.judge(linear).any()


# ------------------------------------------------------------------------------------ C4


def test_c4_predicate_rejects_each_broken_expectation():
    table = quick_result("C4").table.assign(**{"iteration ratio": 8.0})
    assert c4.judge(table).all()
    diverging = table[table["expect"] == "diverge"].iloc[0]
    bounded = table[table["expect"] == "bounded"].iloc[0]
    cases = [
        diverging.copy().to_dict() | {"growth": 1.2},                       # did not diverge
        diverging.copy().to_dict() | {"min step": 1.0},                     # stalled on one step
        diverging.copy().to_dict() | {"reported": "none"},                  # violation not reported
        diverging.copy().to_dict() | {"bound_holds": True},                 # a bound claimed anyway
        diverging.copy().to_dict() | {"assumptions_hold": True},
        bounded.copy().to_dict() | {"growth": 8.0},                         # contrast diverged
        bounded.copy().to_dict() | {"reported": "A3"},                      # spurious violation
    ]
    assert not c4.judge(pd.DataFrame(cases)).any()


def test_c4_fails_when_galasim_hides_the_violation(monkeypatch):
    real = c4.simulate

    def hide(**kwargs):
        result = real(**kwargs)
        result.summary.update(violated="", assumptions_hold=True, bound_holds=True)
        return result

    monkeypatch.setattr(c4, "simulate", hide)
    scenario = next(s for s in c4.scenarios(True) if s.part == "b")
    row, _ = c4.measure(scenario, (250, 500, 1000), seed=0)
    assert row["growth"] > 3  # the crash still diverges...
    assert not c4.judge(pd.DataFrame([row])).all()  # ...but the check notices nothing was reported


# ------------------------------------------------------------------------------------ C5


def test_c5_predicate_rejects_a_slower_gala():
    details = quick_result("C5").details.copy()
    assert c5.evaluate(details)[0]
    slow = details.copy()
    slow.loc[slow.index[0], "ratio"] = 0.95
    passed, failures = c5.evaluate(slow)
    assert not passed and "0.95" in failures[0]
    missing = details[details["delays"] != 2.0]
    assert not c5.evaluate(missing)[0]


# ------------------------------------------------------------------------------------ common


def test_markdown_and_text_tables():
    table = pd.DataFrame({"name": ["a|b", "c"], "x": [1.5, math.inf], "ok": [True, False], "v": [1e-9, None]})
    md = common.markdown_table(table)
    lines = md.splitlines()
    assert lines[0] == "| name | x | ok | v |"
    assert lines[1] == "|---|---:|---|---:|"
    assert lines[2] == "| a\\|b | 1.5 | yes | 1.000e-09 |"
    assert lines[3] == "| c | inf | no | - |"
    text = common.text_table(table)
    assert "yes" in text and "inf" in text and len(text.splitlines()) == 4


def test_leq_and_rel_dev():
    assert common.leq(1.0, 1.0) and common.leq(1.0 + 1e-12, 1.0) and not common.leq(1.001, 1.0)
    assert common.leq(5.0, math.inf) and not common.leq(math.nan, 1.0)
    assert common.rel_dev([2.0, 4.0], [2.0, 4.0]) == 0.0
    assert common.rel_dev([2.0, 4.1], [2.0, 4.0]) == pytest.approx(0.025)


def test_report_lists_every_claim_and_failures(tmp_path):
    good = quick_result("C5")
    bad = common.failed_result("C9", "a claim that raised", RuntimeError("boom"))
    path = common.write_report([good, bad], tmp_path, quick=True, seed=0)
    text = path.read_text()
    assert path == tmp_path / "report.md"
    assert "**Overall: FAIL** (1/2 claims hold)" in text
    assert "## C5" in text and "**PASS**" in text and "## C9" in text and "RuntimeError: boom" in text
    assert "(c5_throughput_ratio.png)" in text and (tmp_path / "c5_throughput_ratio.png").is_file()
    assert (tmp_path / "C5_runs.csv").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_module_main_exit_status(monkeypatch, capsys):
    failing = common.CheckResult("C5", c5.CLAIM, False, pd.DataFrame({"ok": [False]}), failures=["made up"])
    monkeypatch.setattr(c5, "run", lambda quick, seed: failing)
    assert c5.main(["--quick"]) == 1
    out = capsys.readouterr().out
    assert "FAILED: made up" in out and "C5 FAIL" in out


# ------------------------------------------------------------------------------------ CLI


def test_cli_only_and_errors(tmp_path, capsys):
    from galasim.cli import check_cmd

    parser = argparse.ArgumentParser()
    check_cmd.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["check", "--quick", "--only", "c5", "--out", str(tmp_path)])
    assert args.func(args) == 0
    report = (tmp_path / "report.md").read_text()
    assert "## C5" in report and "## C1" not in report
    assert "C5 PASS" in capsys.readouterr().out
    with pytest.raises(ValueError, match="unknown claim"):
        check_cmd.selected("C1,C9", list(proofs_checks.CHECKS))
    assert check_cmd.selected("3, c1", list(proofs_checks.CHECKS)) == ["C1", "C3"]


def test_cli_check_quick_subprocess(tmp_path):
    out = tmp_path / "check"
    done = subprocess.run(
        [sys.executable, "-m", "galasim.cli", "check", "--quick", "--out", str(out)],
        capture_output=True, text=True, cwd=REPO, env=ENV, timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = (out / "report.md").read_text()
    for name in proofs_checks.CHECKS:
        assert f"## {name}" in report
    assert "**Overall: PASS**" in report and "FAIL" not in report
    assert len(list(out.glob("*.png"))) == len(proofs_checks.CHECKS)
    assert "[7/7] C7 PASS" in done.stderr


def test_trajectory_example(tmp_path):
    png = tmp_path / "trajectory.png"
    done = subprocess.run(
        [sys.executable, str(REPO / "examples" / "trajectory_vs_bound.py"), "--out", str(png),
         "--iterations", "300"],
        capture_output=True, text=True, cwd=REPO, env=ENV, timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "bound holds" in done.stdout


# ------------------------------------------------------------------------------------ C6


def test_c6_fails_when_the_extension_deadlocks_or_the_detector_is_silent():
    details = quick_result("C6").details.copy()
    assert c6.evaluate(details)[0]
    broken = details.copy()
    first = broken.index[(broken["protocol"] == "gala-resend") & (broken["kind"] == "static")][0]
    broken.loc[first, ["completed", "stopped", "diagnosis"]] = [False, "deadlock", "agents 0-7 ..."]
    passed, failures = c6.evaluate(broken)
    assert not passed and any("gala-resend" in f for f in failures)
    silent = details.assign(stopped="", completed=True, diagnosis="")
    passed, failures = c6.evaluate(silent)
    assert not passed and any("detector is not firing" in f for f in failures)
