"""The galasim command line as a user runs it: help texts, bench smoke runs, one-line errors."""
import subprocess
import sys

import pandas as pd
import pytest

COMMANDS = ["mixing", "sweep", "check", "bench"]


def galasim(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "galasim.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def test_top_level_help_lists_every_command():
    result = galasim("--help")
    assert result.returncode == 0
    for command in COMMANDS:
        assert command in result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_defaults(command):
    result = galasim(command, "--help")
    assert result.returncode == 0
    assert "default" in result.stdout


@pytest.mark.parametrize("target, engines", [("sim", {"cython", "reference"}), ("mixing", None), ("sweep", None),
                                            ("monitor", None)])
def test_bench_quick_runs_and_writes_its_table(tmp_path, target, engines):
    out = tmp_path / f"{target}.csv"
    result = galasim("bench", target, "--quick", "--repeats", "1", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "machine:" in result.stderr
    table = pd.read_csv(out)
    assert len(table) >= 2
    if engines:
        assert set(table["engine"]) == engines
        # Each reference row is the baseline of its case: its ratio is exactly 1.
        assert (table.loc[table.engine == "reference", "ratio"] == 1.0).all()


@pytest.mark.parametrize("args, message", [
    (["bench", "sim", "--repeats", "0"], "--repeats must be an integer from 1 to 1000, got 0"),
    (["bench", "sim", "--quick", "--out", "table.xlsx"], "extension must be one of .csv, .json"),
    (["mixing", "--topology", "moebius"], "--topology must be one of ring, "),
    (["sweep", "--delays", "-1", "--out", "x"], "delay"),
])
def test_bad_input_is_one_clear_line(tmp_path, args, message):
    result = galasim(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
