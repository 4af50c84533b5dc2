"""Hostile but realistic input and faults (issue 7): no lost results, no tracebacks, nothing runs away.

One section per class of the issue. Every case asserts the exact behaviour: the one-line message
(what is wrong, the value, what is allowed or what to do), the exit status, that nothing was lost.
"""
from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import galasim
from galasim import _validation, topology
from galasim._validation import CERTIFICATE_AUTO_EXACT_MAX_ROWS, CERTIFICATE_AUTO_MAX_ROWS, MAX_CELLS
from galasim.atomic import atomic_write_text
from galasim.cli import main
from galasim.sweep import DEFAULT_GRID, Grid, read_results, run_sweep
from galasim.sweep import store as store_module
from galasim.sweep.store import RESULTS_FILE

REPO = Path(__file__).resolve().parents[1]


def quick_cell(config):
    return {"empirical": float(config["delays"]), "certificate": 1.0}


@pytest.fixture
def small_memory(monkeypatch):
    """A fixed 8 GiB memory limit, so that the size guards do not depend on this machine."""
    monkeypatch.setattr(_validation, "memory_limit", lambda: 8 * 2**30)


def run_cli(capsys, *argv: str) -> tuple[int, str]:
    status = main(list(argv))
    return status, capsys.readouterr().err


def one_line(stderr: str) -> str:
    """The one error line of ``stderr`` (progress lines may precede it)."""
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if ": error: " in line]
    assert len(lines) == 1, stderr
    return lines[0]


# --------------------------------------------------------------------------------------------------
# 1. a sweep never loses computed cells


@pytest.mark.parametrize("params, message", [
    ({"sync_freq": ["2", "1e30"]}, "sync_freq must be an integer from 0 to 2**63 - 1, or inf, got '1e30'"),
    ({"sync_freq": [1e30]}, "sync_freq must be an integer from 0 to 2**63 - 1, or inf, got 1e+30"),
    ({"iterations": [2**63]}, "iterations must be an integer from 1 to 2**63 - 1, got 9223372036854775808"),
    ({"dim": ["1e10"]}, "dim must be an integer from 1 to 2**31 - 1, got '1e10'"),
    ({"agents": [8], "seeds": ["18446744073709551616"]},
     "seeds must be an integer from 0 to 2**64 - 1, got '18446744073709551616'"),
])
def test_grid_values_beyond_the_c_types_are_refused_up_front(params, message):
    with pytest.raises(ValueError) as info:
        Grid.from_mapping(params)
    assert str(info.value) == message


@pytest.mark.parametrize("engine", ["cython", "reference"])
@pytest.mark.parametrize("kwargs, message", [
    (dict(seed=2**64), "seed must be an integer from 0 to 2**64 - 1, got 18446744073709551616"),
    (dict(seed=-1), "seed must be an integer from 0 to 2**64 - 1, got -1"),
    (dict(iterations=2**63), "iterations must be an integer from 1 to 2**63 - 1, got 9223372036854775808"),
    (dict(sync_freq=2**63), "sync_freq must be an integer from 0 to 2**63 - 1, or inf, got 9223372036854775808"),
])
def test_simulate_names_the_allowed_range_for_both_engines(engine, kwargs, message):
    with pytest.raises(ValueError) as info:
        galasim.simulate(**{"agents": 4, "iterations": 10, "engine": engine, **kwargs})
    assert str(info.value) == message


def test_the_largest_seed_runs_identically_on_both_engines():
    runs = [galasim.simulate(agents=4, iterations=20, delays=1.0, seed=2**64 - 1, engine=engine)
            for engine in ("cython", "reference")]
    assert runs[0].summary["empirical"] == runs[1].summary["empirical"]


def test_a_value_parquet_cannot_store_costs_no_other_row(tmp_path):
    def cell(config):
        return {"count": 2**70 if config["delays"] == 1.0 else 3}

    frame = run_sweep(Grid({"delays": [0, 1, 2]}, seeds=2), tmp_path, n_jobs=1, progress=False,
                      cell_fn=cell)
    stored = read_results(tmp_path / RESULTS_FILE)
    assert len(stored) == len(frame) == 6 and set(stored["status"]) == {"ok"}
    assert sorted(stored["count"]) == ["1180591620717411303424"] * 2 + ["3"] * 4


def test_seeds_are_stored_exactly_and_a_resume_recomputes_nothing(tmp_path):
    seeds = [2**64 - 1, 2**63, 2**53 + 1, 5]
    grid = Grid({"delays": [0]}, seeds=seeds)
    # Two flushes: small seeds first, as when a sweep grows (int64 then uint64 made float64).
    run_sweep(Grid({"delays": [0]}, seeds=[5]), tmp_path, n_jobs=1, progress=False, cell_fn=quick_cell)
    run_sweep(grid, tmp_path, n_jobs=1, progress=False, cell_fn=quick_cell)
    stored = read_results(tmp_path / RESULTS_FILE)
    assert stored["seed"].dtype == np.uint64
    assert sorted(int(s) for s in stored["seed"]) == sorted(seeds)

    def must_not_run(config):
        raise AssertionError(f"recomputed {config}")

    again = run_sweep(grid, tmp_path, n_jobs=1, progress=False, cell_fn=must_not_run)
    assert [int(s) for s in again["seed"]] == seeds


def test_seeds_of_an_older_store_join_new_ones_exactly(tmp_path):
    run_sweep(Grid({"delays": [0]}, seeds=[1, 2]), tmp_path, n_jobs=1, progress=False,
              cell_fn=quick_cell)
    table = pq.read_table(tmp_path / RESULTS_FILE)  # as an older galasim wrote it: int64 seeds
    index = table.schema.get_field_index("seed")
    pq.write_table(table.set_column(index, "seed", table["seed"].cast(pa.int64())),
                   tmp_path / RESULTS_FILE)
    run_sweep(Grid({"delays": [0]}, seeds=[2**64 - 1]), tmp_path, n_jobs=1, progress=False,
              cell_fn=quick_cell)
    assert sorted(int(s) for s in read_results(tmp_path / RESULTS_FILE)["seed"]) == [1, 2, 2**64 - 1]


def test_a_hand_edited_store_with_repeated_cell_ids_is_refused(tmp_path):
    run_sweep(Grid({"delays": [0, 1]}, seeds=1), tmp_path, n_jobs=1, progress=False,
              cell_fn=quick_cell)
    path = tmp_path / RESULTS_FILE
    frame = pq.read_table(path).to_pandas()
    pq.write_table(pa.Table.from_pandas(pd.concat([frame, frame.iloc[:1]])), path)
    with pytest.raises(ValueError) as info:
        read_results(path)
    assert f"{path} has 1 repeated cell id(s), e.g. {frame['cell_id'].iloc[0]!r}" in str(info.value)
    assert "keep one row per cell_id" in str(info.value)


def full_disk(path, write):
    raise OSError(errno.ENOSPC, "No space left on device", f"{path}.123-x.tmp")


def test_a_full_disk_says_how_many_cells_are_saved_and_keeps_the_old_file(tmp_path, monkeypatch):
    run_sweep(Grid({"delays": [0]}, seeds=2), tmp_path, n_jobs=1, progress=False, cell_fn=quick_cell)
    before = (tmp_path / RESULTS_FILE).read_bytes()
    monkeypatch.setattr(store_module, "atomic_write", full_disk)
    with pytest.raises(OSError) as info:
        run_sweep(Grid({"delays": [0, 1, 2]}, seeds=2), tmp_path, n_jobs=1, progress=False,
                  cell_fn=quick_cell)
    assert str(info.value) == (
        f"cannot write {tmp_path / RESULTS_FILE} (No space left on device): 2 of 6 cells are saved "
        "there, the 4 finished since are not; free some space (or fix the cause), then run the same "
        "sweep again to resume"
    )
    assert (tmp_path / RESULTS_FILE).read_bytes() == before
    assert not (tmp_path / (RESULTS_FILE + ".lock")).exists()


def test_a_full_disk_in_the_cli_is_one_line_and_exit_status_1(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(store_module, "atomic_write", full_disk)
    monkeypatch.setattr("galasim.sweep.runner.run_cell", quick_cell)
    status, stderr = run_cli(capsys, "sweep", "--delays", "0,1", "--seeds", "1", "--jobs", "1",
                             "--out", str(tmp_path / "out"))
    assert status == 1
    assert one_line(stderr) == (
        f"galasim sweep: error: cannot write {tmp_path / 'out' / RESULTS_FILE} (No space left on "
        "device): 0 of 2 cells are saved there, the 2 finished since are not; free some space (or "
        "fix the cause), then run the same sweep again to resume"
    )


# --------------------------------------------------------------------------------------------------
# 2. absurd costs fail fast, naming the estimate and the limit


@pytest.mark.usefixtures("small_memory")
@pytest.mark.parametrize("call, message", [
    (lambda: galasim.simulate(agents=10**7),
     "simulate with 10000000 agents, 10000000 edges and 1000 iterations would process about 2e+10 "
     "events, more than the limit of 1e+10; use fewer agents or iterations"),
    (lambda: galasim.simulate(agents=8, dim=10**9),
     "simulate with 8 agents, dim=1000000000 and trajectory_samples=200 needs about 358 GiB of "
     "memory, more than the limit of 8 GiB (half of this machine's memory); use fewer agents, a "
     "smaller dim or fewer trajectory_samples"),
    (lambda: galasim.simulate(agents=8, trajectory_samples=2**31 - 1),
     "simulate with 8 agents, dim=8 and trajectory_samples=2147483647 needs about 128 GiB of memory, "
     "more than the limit of 8 GiB (half of this machine's memory); use fewer agents, a smaller dim "
     "or fewer trajectory_samples"),
    (lambda: galasim.simulate("complete", agents=200, iterations=1, certificate=True),
     "certificate=True on 200 agents and 39800 edges (dense 40000 x 40000 products) needs about "
     "35.8 GiB of memory, more than the limit of 8 GiB (half of this machine's memory); use "
     "certificate='auto' or False"),
    (lambda: topology.hypercube(40),
     "hypercube(dim=40) with 1099511627776 agents and 43980465111040 edges needs about 4.2 PiB of "
     "memory, more than the limit of 8 GiB (half of this machine's memory); use fewer agents"),
    (lambda: topology.erdos_renyi(10**5, 0.001),
     "erdos_renyi(n=100000) would draw n(n-1) = 9999900000 random numbers, one per pair of agents, "
     "more than the limit of 100000000; use fewer agents or random-regular"),
    (lambda: Grid.from_mapping({**DEFAULT_GRID, "seeds": 10**7}),
     f"the grid has 240000000 cells (24 configurations x 10000000 seeds), more than the limit of "
     f"{MAX_CELLS}; sweep fewer values or seeds"),
])
def test_absurd_requests_fail_fast_naming_estimate_and_limit(call, message):
    with pytest.raises(ValueError) as info:
        call()
    assert str(info.value) == message


@pytest.mark.usefixtures("small_memory")
def test_mixing_of_a_hundred_million_agents_fails_fast(capsys):
    status, stderr = run_cli(capsys, "mixing", "--agents", "100000000")
    assert status == 2
    assert one_line(stderr) == (
        "galasim mixing: error: ring(n=100000000, peers=1, directed) with 100000000 agents and "
        "100000000 edges needs about 73.6 GiB of memory, more than the limit of 8 GiB (half of this "
        "machine's memory); use fewer agents"
    )


# --------------------------------------------------------------------------------------------------
# 3. no traceback for an ordinary mistake or OS error


def cli_cases(tmp: Path) -> list[tuple[list[str], str]]:
    (tmp / "a-file").write_text("")
    (tmp / "grid.yaml").mkdir()
    (tmp / "latin1.yaml").write_bytes("delays: [0]  # caf\xe9\n".encode("latin-1"))
    return [
        (["sweep", "--delays", "0", "--out", str(tmp / "a-file")],
         f"--out {tmp / 'a-file'} is a file, not a folder; choose a folder (it is created if missing)"),
        (["sweep", "--delays", "0", "--out", str(tmp / "a-file" / "out")],
         f"--out {tmp / 'a-file' / 'out'}: {tmp / 'a-file'} is a file, so nothing can be created "
         "under it; choose another --out"),
        (["sweep", "--grid", str(tmp / "grid.yaml")],
         f"grid file {tmp / 'grid.yaml'} is a folder; name a .yaml, .yml or .toml file"),
        (["sweep", "--grid", str(tmp / "latin1.yaml")],
         f"grid file {tmp / 'latin1.yaml'} is not UTF-8 text (byte 0xe9 at offset 18); save it as UTF-8"),
        (["sweep", "--delays", "0", "--jobs", "0"],
         f"--jobs must be -1 (one per core) or an integer from 1 to {4 * os.cpu_count()} (4 per core), "
         "got 0"),
        (["sweep", "--sync-freq", "2,1e30"],
         "sync_freq must be an integer from 0 to 2**63 - 1, or inf, got '1e30'"),
        (["check", "--seed", "-1"], "--seed must be an integer from 0 to 2**63 - 1, got -1"),
        (["mixing", "--out", str(tmp / "a-file" / "t.csv")],
         f"--out {tmp / 'a-file' / 't.csv'}: {tmp / 'a-file'} is a file, so nothing can be created "
         "under it; choose another --out"),
        (["bench", "sim", "--quick", "--out", str(tmp)],
         f"--out {tmp} is a folder; name a file (in it, for example)"),
    ]


def test_ordinary_mistakes_are_one_line_with_exit_status_2(tmp_path, capsys):
    for argv, message in cli_cases(tmp_path):
        status, stderr = run_cli(capsys, *argv)
        assert (status, one_line(stderr)) == (2, f"galasim {argv[0]}: error: {message}"), argv


def test_the_dask_backend_without_dask_names_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)  # what `import distributed` sees uninstalled
    status, stderr = run_cli(capsys, "sweep", "--delays", "0", "--backend", "dask", "--address",
                             "tcp://127.0.0.1:8786", "--out", str(tmp_path / "out"))
    assert status == 2
    assert one_line(stderr) == (
        "galasim sweep: error: the dask backend needs dask.distributed, which is not installed: "
        "pip install 'galasim[dask]'"
    )
    assert not (tmp_path / "out").exists()


def test_check_with_a_negative_seed_is_an_argument_error_in_a_real_process(tmp_path):
    result = subprocess.run([sys.executable, "-m", "galasim.cli", "check", "--seed", "-1", "--out",
                             str(tmp_path / "report")], capture_output=True, text=True, cwd=REPO,
                            timeout=120)
    assert result.returncode == 2
    assert result.stderr == "galasim check: error: --seed must be an integer from 0 to 2**63 - 1, got -1\n"
    assert "FAIL" not in result.stdout and not (tmp_path / "report").exists()


def edge_graph(delay) -> nx.DiGraph:
    G = nx.DiGraph([(0, 1), (1, 2), (2, 0)])
    G.edges[1, 2]["delay"] = delay
    return G


def multigraph_with_two_delays() -> nx.MultiDiGraph:
    G = nx.MultiDiGraph([(0, 1), (1, 0)])
    G.add_edge(0, 1, delay=1.0)
    G.add_edge(0, 1, delay=5.0)
    return G


@pytest.mark.parametrize("call, error, message", [
    (lambda: galasim.simulate(edge_graph("abc"), delays="per-edge", iterations=5), ValueError,
     "the delay of edge 1 -> 2 must be a finite number >= 0 (in mean compute times), got 'abc'"),
    (lambda: galasim.simulate(edge_graph(None), delays="per-edge", iterations=5), ValueError,
     "the delay of edge 1 -> 2 must be a finite number >= 0 (in mean compute times), got None"),
    (lambda: galasim.simulate(nx.relabel_nodes(edge_graph("x"), dict(enumerate("abc"))).to_undirected(),
                              delays="per-edge", iterations=5), ValueError,
     "the delay of edge 1 -> 2 (labels 'b' -> 'c') must be a finite number >= 0 (in mean compute "
     "times), got 'x'"),
    (lambda: galasim.simulate(multigraph_with_two_delays(), delays="per-edge", iterations=5), ValueError,
     "parallel edges 0 -> 1 have different delays 1.0 and 5.0; a communication graph has one delay "
     "per edge: merge them"),
    (lambda: galasim.simulate("random-regular", agents=3), ValueError,
     "random-regular needs an even number of agents >= 4, got 3"),
    (lambda: galasim.simulate(3), TypeError,
     "topology must be a name (ring, ring-undirected, torus, hypercube, complete, exponential, "
     "one-peer-exponential, random-regular, erdos-renyi), a networkx graph or a "
     "galasim.topology.Schedule; got int"),
    (lambda: galasim.simulate(dim=2.5), TypeError, "dim must be an integer from 1 to 2**31 - 1, got 2.5"),
    (lambda: topology.load(REPO), ValueError,
     f"topology file {REPO} is a directory; name a .graphml or edge list file in it"),
])
def test_clear_messages(call, error, message):
    with pytest.raises(error) as info:
        call()
    assert str(info.value) == message


def test_a_multigraph_with_per_edge_delays_runs_with_them():
    G = nx.MultiDiGraph([(0, 1), (1, 0)])
    G.add_edge(0, 1, delay=2.0)
    merged = nx.DiGraph([(0, 1, {"delay": 2.0}), (1, 0)])
    runs = [galasim.simulate(g, delays="per-edge", iterations=20) for g in (G, merged)]
    assert runs[0].summary == {**runs[1].summary, "wall_time": runs[0].summary["wall_time"],
                               "events_per_second": runs[0].summary["events_per_second"]}


# --------------------------------------------------------------------------------------------------
# 4. the file system stays clean and usable


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_written_files_respect_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "table.csv", "a\n")
    finally:
        os.umask(old)
    assert (tmp_path / "table.csv").stat().st_mode & 0o777 == mode


def test_temporary_files_of_killed_writers_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    orphan = tmp_path / f".results.parquet.{dead}-k1l3d.tmp"
    mine = tmp_path / f".results.parquet.{os.getpid()}-w0rk.tmp"  # a write still in progress
    other = tmp_path / f".summary.csv.{dead}-k1l3d.tmp"  # another destination's: not ours to judge
    for path in (orphan, mine, other):
        path.write_text("half")
    atomic_write_text(tmp_path / "results.parquet", "x")
    assert not orphan.exists() and mine.exists() and other.exists()


def test_no_lock_file_stays_behind(tmp_path):
    run_sweep(Grid({"delays": [0]}, seeds=1), tmp_path, n_jobs=1, progress=False, cell_fn=quick_cell)
    assert sorted(p.name for p in tmp_path.iterdir()) == [RESULTS_FILE]


def test_a_run_stopped_before_storing_anything_leaves_no_folder(tmp_path):
    def interrupted(config):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(Grid({"delays": [0]}, seeds=1), tmp_path / "new", n_jobs=1, progress=False,
                  cell_fn=interrupted)
    assert list(tmp_path.iterdir()) == []


def test_help_texts_quote_the_constants(capsys):
    with pytest.raises(SystemExit):
        main(["sweep", "--help"])
    flat = " ".join(capsys.readouterr().out.split())
    assert (f"auto (exact when n + edges <= {CERTIFICATE_AUTO_EXACT_MAX_ROWS}, true when <= "
            f"{CERTIFICATE_AUTO_MAX_ROWS}, else false)") in flat
    assert f"{DEFAULT_GRID['seeds']} seeds (galasim.sweep.DEFAULT_GRID)" in flat
    assert "2 a usage error" in flat and "130 interrupted" in flat


SLOW_CELL = '''
import time


def slow_cell(config):
    time.sleep(0.2)
    return {"empirical": 0.0}
'''

DRIVER = '''
import sys
import slow_cell
import galasim.sweep.runner
from galasim.cli import main

galasim.sweep.runner.run_cell = slow_cell.slow_cell
sys.exit(main(sys.argv[1:]))
'''


def children(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_workers_do_not_outlive_a_killed_sweep(tmp_path):
    (tmp_path / "slow_cell.py").write_text(textwrap.dedent(SLOW_CELL))
    (tmp_path / "driver.py").write_text(textwrap.dedent(DRIVER))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO)]))
    sweep = subprocess.Popen(
        [sys.executable, str(tmp_path / "driver.py"), "sweep", "--delays", "0,1,2,3", "--seeds", "50",
         "--jobs", "2", "--no-plots", "--out", str(tmp_path / "out")],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not (tmp_path / "out" / RESULTS_FILE).exists():  # the workers have run cells
        assert sweep.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    workers = children(sweep.pid)
    assert workers
    sweep.send_signal(signal.SIGKILL)
    sweep.wait()
    deadline = time.monotonic() + 30  # generous: the workers check their parent every second
    while any(Path(f"/proc/{pid}").exists() for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    alive = [pid for pid in workers if Path(f"/proc/{pid}").exists()]
    for pid in alive:  # leave no orphan behind, even when the test fails
        os.kill(pid, signal.SIGKILL)
    assert not alive
