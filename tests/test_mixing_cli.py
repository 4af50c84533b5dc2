"""``galasim mixing``: table contents, output formats, atomic --out, help and bad values."""
from __future__ import annotations

import argparse
import io
import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from galasim import mixing, topology
from galasim.cli import mixing_cmd

ROOT = Path(__file__).resolve().parents[1]


def parser() -> argparse.ArgumentParser:
    """A stand-alone parser with only the mixing command, as the dispatcher builds it."""
    top = argparse.ArgumentParser(prog="galasim")
    mixing_cmd.add_parser(top.add_subparsers(dest="command"))
    return top


def run(*argv: str, capsys=None) -> str:
    args = parser().parse_args(["mixing", *argv])
    assert args.func(args) == 0
    return capsys.readouterr().out if capsys else ""


def test_one_row_per_combination_with_correct_values(capsys):
    out = run("--topology", "ring,hypercube", "--agents", "8,16", "--format", "csv", capsys=capsys)
    table = pd.read_csv(io.StringIO(out))
    assert list(table.columns) == list(mixing_cmd.COLUMNS)
    assert list(zip(table["topology"], table["agents"])) == [
        ("ring", 8), ("ring", 16), ("hypercube", 8), ("hypercube", 16)]
    ring16 = table.iloc[1]
    assert ring16["slem"] == pytest.approx(math.cos(math.pi / 16), abs=1e-12)
    assert ring16["spectral_gap"] == pytest.approx(1 - math.cos(math.pi / 16), abs=1e-12)
    assert ring16["averaging_time"] == mixing.averaging_time(mixing.mixing_matrix(topology.ring(16)))
    assert ring16["dobrushin"] == 1.0
    bound = mixing.epsilon_bound(topology.ring(16), 7e-4, 1.0)
    assert ring16["C"] == pytest.approx(bound.C) and ring16["q"] == pytest.approx(bound.q)
    assert ring16["log10_epsilon_per_unit"] == pytest.approx(math.log10(bound.epsilon / 7e-4))
    # directed ring: Σ τ₁(W^m) = n²/4, and the certificate is 2 Σ per unit of lr L
    assert 2 * 16**2 / 4 <= ring16["epsilon_data_per_unit"] <= 1.03 * 2 * 16**2 / 4
    assert ring16["epsilon_data"] == pytest.approx(7e-4 * ring16["epsilon_data_per_unit"])
    assert table.iloc[2]["slem"] == pytest.approx(0.5, abs=1e-12)  # hypercube d = 3: (d-1)/(d+1)


def test_delays_schedules_and_weights(capsys):
    out = run("--topology", "ring,one-peer-exponential", "--agents", "8", "--tau", "2",
              "--weights", "lazy", "--format", "json", capsys=capsys)
    rows = json.loads(out)
    assert [row["tau"] for row in rows] == [2, 2] and rows[0]["weights"] == "lazy"
    W = mixing.delay_augmented(mixing.mixing_matrix(topology.ring(8), "lazy"), 2)
    assert rows[0]["slem"] == pytest.approx(mixing.slem(W), abs=1e-12)
    assert rows[1]["slem"] < rows[0]["slem"]
    assert rows[0]["dobrushin"] == 1.0  # delay slots share no source with the agents


def test_weights_outside_the_theorem_give_no_bound(capsys):
    out = run("--topology", "erdos-renyi", "--agents", "12", "--weights", "push-sum", "--format", "csv",
              capsys=capsys)
    row = pd.read_csv(io.StringIO(out)).iloc[0]
    assert 0 < row["slem"] < 1
    assert all(math.isnan(row[column]) for column in ("C", "q", "log10_epsilon", "epsilon_data"))


def test_table_format_is_the_default(capsys):
    out = run("--agents", "16", capsys=capsys)
    header = out.splitlines()[0].split()
    assert header == list(mixing_cmd.COLUMNS) and len(out.splitlines()) == 2


@pytest.mark.parametrize("name, reader", [("table.csv", pd.read_csv), ("table.json", pd.read_json)])
def test_out_format_from_extension_and_atomic_write(tmp_path, capsys, name, reader):
    out = tmp_path / "sub" / name
    run("--topology", "torus", "--agents", "16,36", "--out", str(out), capsys=capsys)
    table = reader(out)
    assert list(table["agents"]) == [16, 36]
    assert table["slem"].iloc[0] == pytest.approx(0.6, abs=1e-12)  # 4x4 torus, uniform 1/5
    assert sorted(p.name for p in out.parent.iterdir()) == [name]  # no temporary file left
    assert capsys.readouterr().out == ""


def test_explicit_format_overrides_the_extension(tmp_path):
    out = tmp_path / "table.txt"
    run("--agents", "8", "--format", "csv", "--out", str(out))
    assert out.read_text().startswith("topology,agents,weights,tau,slem")
    run("--agents", "8", "--out", str(out))  # unknown extension: the aligned table
    assert out.read_text().split()[:2] == ["topology", "agents"]


def test_help_shows_defaults_and_every_name():
    text = parser()._subparsers._group_actions[0].choices["mixing"].format_help()
    flat = "".join(text.split())  # argparse wraps lines, also after hyphens
    for default in ("(default:ring)", "(default:16)", "(default:uniform)", "(default:0)",
                    "(default:0.0007)", "(default:1.0)"):
        assert default in flat
    for name in (*topology.NAMES, *mixing.WEIGHTS, *mixing_cmd.COLUMNS):
        assert name in flat, name


@pytest.mark.parametrize("argv, message", [
    (["--topology", "star"], "--topology must be one of ring, .*, got 'star'"),
    (["--topology", "ring,"], "--topology must be a comma-separated list"),
    (["--agents", "1"], "--agents must be an integer from 2 to .*, got '1'"),
    (["--agents", "8,x"], "--agents must be an integer from 2 to .*, got 'x'"),
    (["--weights", "optimal"], "--weights must be one of uniform, .*, got 'optimal'"),
    (["--tau", "-1"], "--tau must be an integer from 0 to .*, got -1"),
    (["--peers", "0"], "--peers must be an integer from 1 to .*, got 0"),
    (["--lr", "0"], "--lr must be a finite number > 0"),
    (["--L", "-1"], "--L must be a finite number > 0"),
    (["--topology", "torus", "--agents", "7"], "torus needs n = rows\\*cols"),
    (["--weights", "metropolis"], "need a symmetric"),
])
def test_bad_values_raise_value_errors(argv, message):
    args = parser().parse_args(["mixing", *argv])
    with pytest.raises(ValueError, match=message):
        args.func(args)


def test_command_line_subprocess(tmp_path):
    # Needs the whole dispatcher (galasim.cli imports every command module).
    command = [sys.executable, "-m", "galasim.cli", "mixing"]
    ok = subprocess.run([*command, "--agents", "8,16", "--format", "csv"],
                        capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert pd.read_csv(io.StringIO(ok.stdout))["agents"].tolist() == [8, 16]
    bad = subprocess.run([*command, "--tau", "-2"],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert bad.returncode == 2
    assert bad.stderr.strip() == "galasim mixing: error: --tau must be an integer from 0 to 2**63 - 1, got -2"
