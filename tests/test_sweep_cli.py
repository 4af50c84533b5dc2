"""`galasim sweep` as a user runs it: subprocesses, bad input, kill and resume, the example."""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from galasim.cli import main, sweep_cmd
from galasim.sweep import DEFAULT_GRID, RESULTS_FILE, Grid, read_results

REPO = Path(__file__).resolve().parents[1]
SMALL_REAL_GRID = [
    "--protocol", "gala,allreduce", "--agents", "4", "--iterations", "60", "--delays", "0,2",
    "--seeds", "2",
]


def galasim_sweep(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "galasim.cli", "sweep", *args],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=120,
    )


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="galasim")
    sweep_cmd.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["sweep", *argv])


# --------------------------------------------------------------------------- flags into a grid


def test_no_parameter_flags_runs_the_built_in_study():
    default = Grid.from_mapping(DEFAULT_GRID).to_mapping()
    assert sweep_cmd.build_grid(parse()).to_mapping() == default
    assert sweep_cmd.build_grid(parse("--seeds", "5")).seeds == (0, 1, 2, 3, 4)


def test_flags_take_lists_and_model_strings():
    grid = sweep_cmd.build_grid(
        parse(
            "--delays", "0,0.5,uniform:0.5,1.5", "lognormal:1,0.5", "--agents", "8,32",
            "--sync-freq", "0;inf", "--L", "2", "--seeds", "3,7",
        )
    )
    assert grid.params == {
        "agents": (8, 32),
        "L": (2.0,),
        "delays": (0.0, 0.5, "uniform:0.5,1.5", "lognormal:1,0.5"),
        "sync_freq": (0, "inf"),
    }
    assert grid.seeds == (3, 7)


def test_flags_override_the_grid_file(tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text("protocol: [gala, allreduce]\ndelays: [0, 1]\nsync-freq: [2]\nseeds: 4\n")
    grid = sweep_cmd.build_grid(parse("--grid", str(path), "--delays", "8", "--sync-freq", "3"))
    assert grid.params == {"protocol": ("gala", "allreduce"), "delays": (8.0,), "sync_freq": (3,)}
    assert grid.seeds == (0, 1, 2, 3)


# ---------------------------------------------------------------------------------- subprocesses


def test_sweep_command_on_a_small_real_grid(tmp_path):
    out = tmp_path / "out"
    done = galasim_sweep(*SMALL_REAL_GRID, "--jobs", "2", "--out", str(out))
    assert done.returncode == 0, done.stderr
    results = read_results(out / RESULTS_FILE)
    assert len(results) == 8 and set(results["status"]) == {"ok"}
    for name in ("summary.csv", "distance_vs_delay.png", "throughput_vs_delay.png"):
        assert (out / name).stat().st_size > 0
    summary = pd.read_csv(out / "summary.csv")
    assert len(summary) == 4 and (summary["cells"] == 2).all()
    assert "empirical" in done.stdout and "allreduce" in done.stdout
    assert "8/8" in done.stderr  # the progress bar's last state

    rerun = galasim_sweep(*SMALL_REAL_GRID, "--out", str(out), "--no-plots")
    assert rerun.returncode == 0, rerun.stderr
    assert "resuming: 8 of 8 cells" in rerun.stderr
    assert read_results(out / RESULTS_FILE).equals(results)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--delays", "0,-1"], "delay must be >= 0"),
        (["--delays", "nan"], "nan"),
        (["--delays", "foo:1"], "unknown delay model 'foo:1'"),
        (["--lr", "0"], "lr must be a finite number > 0, got '0'"),
        (["--sync-freq", "-1"], "sync_freq must be an integer >= 0"),
        (["--topology", "rng"], "topology must be one of ring, "),
        (["--protocol", "gala,gosip"], "unknown protocol 'gosip'"),
        (["--compute", "weibull:1"], "unknown compute model"),
        (["--faults", "drop:x"], "cannot read fault 'drop:x'"),
        (["--agents", "8,,32"], "empty value"),
        (["--grid", "missing.yaml"], "missing.yaml"),
        (["--backend", "dask"], "needs the scheduler's address"),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path, capsys, args, message):
    # In process (the dispatcher's own main) to keep the suite fast; the next test is a subprocess.
    assert main(["sweep", *args, "--out", str(tmp_path / "out")]) == 2
    stderr = capsys.readouterr().err
    last = stderr.splitlines()[-1]
    assert last.startswith("galasim sweep: error:") and message in last
    assert not (tmp_path / "out").exists()


def test_bad_input_exits_2_without_a_traceback(tmp_path):
    path = tmp_path / "grid.yaml"
    path.write_text("# nothing yet\n")
    done = galasim_sweep("--grid", str(path), "--out", str(tmp_path / "out"))
    assert done.returncode == 2
    assert "galasim sweep: error: empty grid" in done.stderr and "Traceback" not in done.stderr


def test_unreadable_results_file_is_an_error_and_left_alone(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / RESULTS_FILE).write_bytes(b"PAR1 garbage")
    done = galasim_sweep(*SMALL_REAL_GRID, "--out", str(out))
    assert done.returncode == 2
    assert "cannot read the results file" in done.stderr and "move it aside" in done.stderr
    assert (out / RESULTS_FILE).read_bytes() == b"PAR1 garbage"


# ------------------------------------------------------------------------------- kill and resume

SLOW_CELL = '''
import os
import time


def slow_cell(config):
    """Slow enough to be killed mid-sweep; logs each call so recomputation shows."""
    time.sleep(0.1)
    with open(os.environ["GALASIM_TEST_CALLS"], "a") as log:
        log.write(f"{config['delays']} {config['seed']}\\n")
    return {"empirical": 0.01 * config["delays"], "certificate": 1.0, "epsilon": 2.0,
            "throughput_vs_allreduce": 1.0, "bound_holds": True}
'''

# `python -m galasim.cli` with the simulator swapped for slow_cell: the patched name is what
# run_sweep reads, and loky workers import slow_cell from PYTHONPATH.
DRIVER = '''
import sys
import slow_cell
import galasim.sweep.runner
from galasim.cli import main

galasim.sweep.runner.run_cell = slow_cell.slow_cell
sys.exit(main(sys.argv[1:]))
'''


def _start(tmp_path: Path, out: Path, calls: Path) -> subprocess.Popen:
    path = os.pathsep.join([str(tmp_path), str(REPO)])
    env = dict(os.environ, PYTHONPATH=path, GALASIM_TEST_CALLS=str(calls))
    argv = ["sweep", "--delays", "0,1,2,3,4,5", "--seeds", "4", "--jobs", "2", "--no-plots"]
    argv += ["--out", str(out)]
    return subprocess.Popen(
        [sys.executable, str(tmp_path / "driver.py"), *argv],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job has
        # Ctrl-C's default action even when the suite itself runs as a background job (`cmd &` in a
        # script ignores SIGINT, and children inherit that): the test is about galasim's handling.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _calls(path: Path) -> list[tuple[float, int]]:
    lines = path.read_text().split() if path.exists() else []
    return [(float(d), int(s)) for d, s in zip(lines[::2], lines[1::2])]


@pytest.mark.parametrize("how", ["SIGINT to the process group (Ctrl-C)", "SIGTERM (kill)"])
def test_a_killed_sweep_resumes_without_recomputing(tmp_path, how):
    (tmp_path / "slow_cell.py").write_text(textwrap.dedent(SLOW_CELL))
    (tmp_path / "driver.py").write_text(textwrap.dedent(DRIVER))
    out, total = tmp_path / "out", 24
    first = _start(tmp_path, out, tmp_path / "calls1.txt")
    deadline = time.monotonic() + 60
    while not (out / RESULTS_FILE).exists() and first.poll() is None:
        assert time.monotonic() < deadline, "no cell was stored within a minute"
        time.sleep(0.05)
    if how.startswith("SIGINT"):
        os.killpg(first.pid, signal.SIGINT)
    else:
        first.send_signal(signal.SIGTERM)
    _, stderr = first.communicate(timeout=60)
    assert first.returncode == 130, stderr
    saved = read_results(out / RESULTS_FILE)
    assert 0 < len(saved) < total, "the sweep should have been stopped part-way"
    assert f"interrupted: {len(saved)} of {total} cells are saved" in stderr
    assert "run the same sweep again to resume" in stderr

    second = _start(tmp_path, out, tmp_path / "calls2.txt")
    _, stderr = second.communicate(timeout=60)
    assert second.returncode == 0, stderr
    final = read_results(out / RESULTS_FILE)
    assert len(final) == total and final["cell_id"].is_unique and set(final["status"]) == {"ok"}
    recomputed = set(_calls(tmp_path / "calls2.txt"))
    stored_before = set(zip(saved["delays"], saved["seed"]))
    assert not recomputed & stored_before
    assert len(recomputed) == total - len(saved)
    kept = final.set_index("cell_id").loc[saved["cell_id"], "computed_at"]
    assert kept.tolist() == saved["computed_at"].tolist()


# ---------------------------------------------------------------------------------------- example


def test_delay_sweep_example_runs(tmp_path):
    done = subprocess.run(
        [sys.executable, str(REPO / "examples" / "delay_sweep.py"), str(tmp_path)],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / RESULTS_FILE).exists()
    assert "empirical" in done.stdout
