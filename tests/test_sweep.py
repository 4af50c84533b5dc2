"""galasim.sweep: grids, cell ids, the resumable store, the backends, plots and the summary."""
from __future__ import annotations

import inspect
import math
import os
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from galasim.sim import simulate
from galasim.sweep import (
    DEFAULT_GRID,
    PARAMETERS,
    RESULTS_FILE,
    Grid,
    ResultStore,
    bench_sweep_scaling,
    cell_id,
    format_summary,
    plot_sweep,
    read_grid_file,
    read_results,
    run_sweep,
    split_list,
    summarize,
)
from galasim.sweep import store as store_module
from galasim.sweep.grid import parse_seeds


def fake_cell(config):
    """A fast stand-in for simulate: a pure function of the configuration and the seed."""
    delay = config["delays"] if isinstance(config["delays"], float) else 1.0
    gala = config["protocol"] != "allreduce"
    empirical = config["lr"] * (1 + delay) * (1 + 0.1 * config["seed"]) if gala else 0.0
    return {
        "empirical": empirical,
        "certificate": 3 * empirical,
        "epsilon": math.inf,
        "log10_epsilon": 300.0 + delay,
        "bound_holds": config["seed"] != 1 if gala else None,
        "throughput_vs_allreduce": 1.0 + delay if gala else 1.0,
        "violated": "",
        "worker_pid": os.getpid(),
    }


class Counting:
    """A cell function that records each configuration it runs (in this process: n_jobs=1)."""

    def __init__(self, fail_when=lambda config: False, interrupt_after=None):
        self.calls = []
        self.fail_when = fail_when
        self.interrupt_after = interrupt_after

    def __call__(self, config):
        if self.interrupt_after is not None and len(self.calls) == self.interrupt_after:
            raise KeyboardInterrupt
        self.calls.append((config["delays"], config["seed"]))
        if self.fail_when(config):
            raise RuntimeError(f"boom at delay {config['delays']}")
        return fake_cell(config)


def sweep(grid, out, cell_fn=fake_cell, **kwargs):
    return run_sweep(grid, out, n_jobs=1, progress=False, cell_fn=cell_fn, **kwargs)


# ------------------------------------------------------------------------------------------ grids


@pytest.mark.parametrize(
    "text, values",
    [
        ("8,32", ["8", "32"]),
        (
            "0,0.5,uniform:0.5,1.5,lognormal:1,0.5",
            ["0", "0.5", "uniform:0.5,1.5", "lognormal:1,0.5"],
        ),
        ("pareto:1,2.5,constant:1", ["pareto:1,2.5", "constant:1"]),
        ("uniform:0.5,1.5;2", ["uniform:0.5,1.5", "2"]),
        ("none,drop:0.1,crash:3@500+link:2", ["none", "drop:0.1", "crash:3@500+link:2"]),
        ("link:2->3@100,crash:3@5", ["link:2->3@100", "crash:3@5"]),
        (" ring , exponential ", ["ring", "exponential"]),
    ],
)
def test_split_list_keeps_the_commas_of_model_strings(text, values):
    assert split_list(text) == values


_numbers = st.floats(0, 100, allow_nan=False).map(lambda x: f"{x:g}")
_models = st.sampled_from(
    ["uniform:0.5,1.5", "lognormal:1,0.5", "pareto:1,2.5", "constant:1", "per-edge"]
)


@given(st.lists(_numbers | _models, min_size=1, max_size=8))
def test_semicolons_always_separate(values):
    assert split_list(";".join(values)) == values


@given(st.lists(_numbers, max_size=5), st.lists(_models, max_size=5))
def test_commas_separate_when_numbers_come_before_models(numbers, models):
    values = numbers + models
    assume(values)
    assert split_list(",".join(values)) == values


@pytest.mark.parametrize("text", ["1,,2", "1,", ";", ""])
def test_split_list_rejects_empty_values(text):
    with pytest.raises(ValueError, match="empty value"):
        split_list(text)


def test_grid_puts_values_in_canonical_form():
    grid = Grid(
        {
            "agents": ["8", 32.0],
            "delays": ["0", 2, " uniform:0.5,1.5 "],
            "sync-freq": ["inf", "2", "default"],
            "faults": ["none", "drop:0.1"],
            "certificate": ["true", "auto", False],
            "protocol": ["GALA"],
        }
    )
    assert grid.params == {
        "protocol": ("gala",),
        "agents": (8, 32),
        "delays": (0.0, 2.0, "uniform:0.5,1.5"),
        "sync_freq": ("inf", 2, None),
        "faults": (None, "drop:0.1"),
        "certificate": (True, "auto", False),
    }


def test_grid_cells_fill_in_defaults_with_seeds_varying_fastest():
    grid = Grid({"delays": [0, 1], "protocol": ["gala", "allreduce"]}, seeds=[4, 9])
    cells = grid.cells()
    assert len(grid) == len(cells) == 8
    assert [(c.config["protocol"], c.config["delays"], c.config["seed"]) for c in cells[:4]] == [
        ("gala", 0.0, 4), ("gala", 0.0, 9), ("gala", 1.0, 4), ("gala", 1.0, 9),
    ]
    assert set(cells[0].config) == set(PARAMETERS) | {"seed"}
    assert cells[0].config["agents"] == PARAMETERS["agents"].default
    assert len({c.cell_id for c in cells}) == 8


def test_seeds_are_a_count_or_an_explicit_list():
    assert Grid({"agents": 8}, seeds=3).seeds == (0, 1, 2)
    assert Grid({"agents": 8}, seeds=["5", 2]).seeds == (5, 2)
    assert parse_seeds("4") == 4
    assert Grid({"agents": 8}, seeds=parse_seeds("7,")).seeds == (7,)
    for bad in (0, [], [1, 1], "x", -2):
        with pytest.raises(ValueError, match="seeds"):
            Grid({"agents": 8}, seeds=bad)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"delays": [-1]}, "-1"),
        ({"delays": [float("nan")]}, "nan"),
        ({"delays": ["nan"]}, "nan"),
        ({"delays": ["inf"]}, "inf"),
        ({"delays": ["foo:1"]}, "unknown delay model 'foo:1'"),
        ({"delays": ["uniform:1"]}, "uniform takes 2"),
        ({"compute": ["stragglers:2"]}, "stragglers"),
        ({"faults": ["oops:1"]}, "unknown fault 'oops:1'"),
        ({"lr": [0]}, "lr must be a finite number > 0, got 0"),
        ({"lr": ["-0.1"]}, "lr must be"),
        ({"L": ["nan"]}, "L must be"),
        ({"sync_freq": [-1]}, "sync_freq must be an integer >= 0"),
        ({"topology": ["rng"]}, "topology must be one of ring, .*, got 'rng'"),
        ({"protocol": ["gossip"]}, "unknown protocol 'gossip'"),
        ({"updates": ["callback"]}, "callable"),
        ({"engine": ["gpu"]}, "engine must be one of cython, reference, got 'gpu'"),
        ({"certificate": ["maybe"]}, "certificate must be true, false, auto or exact"),
        ({"agents": [1]}, "agents must be an integer from 2 to .*, got 1"),
        ({"agents": ["eight"]}, "agents must be an integer"),
        ({"iterations": [2.5]}, "iterations must be an integer"),
        ({"agents": []}, "no values given for agents"),
        ({"agents": [8, "8"]}, "agents lists 8 more than once"),
        ({"trajectory_samples": [10]}, "unknown parameter 'trajectory_samples'"),
        ({}, "empty grid"),
    ],
)
def test_bad_grids_are_clear_errors(params, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        Grid(params)


def test_grid_files_yaml_and_toml_give_the_same_cells(tmp_path):
    yaml_file = tmp_path / "grid.yaml"
    yaml_file.write_text(
        "protocol: [gala, allreduce]\ndelays: [0, 0.5, 'uniform:0.5,1.5']\nsync-freq: 2\nseeds: 2\n"
    )
    toml_file = tmp_path / "grid.toml"
    toml_file.write_text(
        'protocol = ["gala", "allreduce"]\ndelays = [0, 0.5, "uniform:0.5,1.5"]\n'
        "sync_freq = 2\nseeds = 2\n"
    )
    from_yaml = Grid.from_mapping(read_grid_file(yaml_file))
    from_toml = Grid.from_mapping(read_grid_file(toml_file))
    assert len(from_yaml) == 12
    assert [c.cell_id for c in from_yaml.cells()] == [c.cell_id for c in from_toml.cells()]


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("grid.json", "{}", "must end in .yaml"),
        ("grid.yaml", "", "empty grid"),
        ("grid.yaml", "delays: [0, 1", "cannot parse grid file"),
        ("grid.toml", "delays = [0, 1", "cannot parse grid file"),
        ("grid.yaml", "- 1\n- 2\n", "must map parameter names"),
    ],
)
def test_bad_grid_files_are_clear_errors(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_grid_file(path)


def test_missing_grid_file(tmp_path):
    with pytest.raises(ValueError, match="cannot read grid file .*nope.yaml: No such file"):
        read_grid_file(tmp_path / "nope.yaml")


def test_default_grid_is_a_valid_grid():
    grid = Grid.from_mapping(DEFAULT_GRID)
    assert set(grid.params["protocol"]) == {"gala", "allreduce"}
    assert len(grid) > 0


# --------------------------------------------------------------------------------------- cell ids


def test_cell_ids_are_stable_across_runs_and_machines():
    # Pinned: a change here silently orphans every stored sweep, so it must be deliberate.
    config = {
        "topology": "ring", "protocol": "gala", "agents": 8, "peers": 1, "dim": 8,
        "iterations": 1000, "lr": 0.01, "L": 1.0, "updates": "two-camp",
        "compute": "exponential:1", "delays": 2.0,
        "sync_freq": None, "faults": None, "certificate": "auto", "engine": "cython", "seed": 7,
    }
    assert cell_id(config) == "c57cc41eb73683cc"
    assert cell_id(dict(reversed(config.items()))) == "c57cc41eb73683cc"
    assert Grid({"delays": [2]}, seeds=[7]).cells()[0].cell_id == "c57cc41eb73683cc"


def test_cell_ids_do_not_depend_on_spelling_but_on_every_value():
    ids = lambda grid: [c.cell_id for c in grid.cells()]  # noqa: E731
    assert ids(Grid({"delays": ["2"]}, seeds=1)) == ids(Grid({"delays": [2.0], "dim": 8}, seeds=1))
    assert ids(Grid({"delays": [2]}, seeds=[0])) != ids(Grid({"delays": [2]}, seeds=[1]))
    assert ids(Grid({"delays": [2]}, seeds=1)) != ids(Grid({"delays": [2], "dim": [9]}, seeds=1))


# ------------------------------------------------------------------------------- store and resume


def test_a_sweep_returns_one_row_per_cell_in_grid_order(tmp_path):
    grid = Grid({"protocol": ["gala", "allreduce"], "delays": [0, 2]}, seeds=2)
    results = sweep(grid, tmp_path)
    assert list(results["cell_id"]) == [c.cell_id for c in grid.cells()]
    assert set(results["status"]) == {"ok"}
    assert results.columns[:4].tolist() == ["cell_id", "status", "error", "computed_at"]
    assert {"certificate_mode", "certificate", "seed", "empirical"} <= set(results.columns)
    stored = read_results(tmp_path / RESULTS_FILE)
    assert sorted(stored["cell_id"]) == sorted(results["cell_id"])
    assert not list(tmp_path.glob("*.tmp"))


def test_finished_cells_are_not_recomputed(tmp_path):
    first = Counting()
    sweep(Grid({"delays": [0, 1]}, seeds=2), tmp_path, first)
    assert len(first.calls) == 4
    again = Counting()
    results = sweep(Grid({"delays": [0, 1, 2]}, seeds=2), tmp_path, again)
    assert again.calls == [(2.0, 0), (2.0, 1)]
    assert len(results) == 6
    assert len(read_results(tmp_path / RESULTS_FILE)) == 6


def test_an_interrupted_sweep_keeps_its_cells_and_resumes(tmp_path, capsys):
    grid = Grid({"delays": [0, 1, 2]}, seeds=2)
    interrupted = Counting(interrupt_after=3)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(grid, tmp_path, n_jobs=1, cell_fn=interrupted)
    assert "interrupted: 3 of 6 cells are saved" in capsys.readouterr().err
    saved = read_results(tmp_path / RESULTS_FILE)
    assert len(saved) == 3

    resumed = Counting()
    results = sweep(grid, tmp_path, resumed)
    assert resumed.calls == [(1.0, 1), (2.0, 0), (2.0, 1)]
    assert len(results) == 6 and set(results["status"]) == {"ok"}
    before = saved.set_index("cell_id")["computed_at"]
    assert (results.set_index("cell_id")["computed_at"][before.index] == before).all()


def test_failed_cells_become_error_rows_and_can_be_retried(tmp_path):
    grid = Grid({"delays": [0, 1, 2]}, seeds=1)
    failing = Counting(fail_when=lambda config: config["delays"] == 1.0)
    results = sweep(grid, tmp_path, failing)
    assert list(results["status"]) == ["ok", "error", "ok"]
    assert results["error"][1] == "RuntimeError: boom at delay 1.0"
    assert math.isnan(results["empirical"][1])

    skipped = Counting()
    sweep(grid, tmp_path, skipped)
    assert skipped.calls == []

    retried = Counting()
    results = sweep(grid, tmp_path, retried, retry_errors=True)
    assert retried.calls == [(1.0, 0)]
    assert list(results["status"]) == ["ok", "ok", "ok"]
    assert len(read_results(tmp_path / RESULTS_FILE)) == 3


@pytest.mark.parametrize(
    "summary, message",
    [
        ({"empirical": [1.0]}, "TypeError: summary value empirical=[1.0] is not a scalar"),
        ({"seed": 3}, "ValueError: summary key 'seed' collides with a results column"),
    ],
)
def test_summaries_that_cannot_be_stored_become_error_rows(tmp_path, summary, message):
    results = sweep(Grid({"delays": [0]}, seeds=1), tmp_path, lambda config: summary)
    assert results["error"][0] == message


def test_columns_that_mix_numbers_and_text_are_stored(tmp_path):
    grid = Grid({"delays": [0.5, "uniform:0.5,1.5"], "sync_freq": [2, "inf"]}, seeds=1)
    sweep(grid, tmp_path)
    stored = read_results(tmp_path / RESULTS_FILE)
    assert sorted(stored["delays"].unique()) == ["0.5", "uniform:0.5,1.5"]
    assert sorted(stored["sync_freq"].unique()) == ["2", "inf"]


def test_a_corrupt_results_file_is_a_clear_error_and_is_left_alone(tmp_path):
    path = tmp_path / RESULTS_FILE
    path.write_bytes(b"not parquet at all")
    with pytest.raises(ValueError, match=f"cannot read the results file {path}.*move it aside"):
        sweep(Grid({"delays": [0]}, seeds=1), tmp_path)
    assert path.read_bytes() == b"not parquet at all"


def test_a_foreign_parquet_file_is_not_taken_for_results(tmp_path):
    path = tmp_path / RESULTS_FILE
    pd.DataFrame({"x": [1, 2]}).to_parquet(path)
    original = path.read_bytes()
    with pytest.raises(ValueError, match="not a galasim sweep results file"):
        sweep(Grid({"delays": [0]}, seeds=1), tmp_path)
    assert path.read_bytes() == original


def test_a_failed_write_keeps_the_previous_table(tmp_path, monkeypatch):
    sweep(Grid({"delays": [0]}, seeds=2), tmp_path)
    path = tmp_path / RESULTS_FILE
    original = path.read_bytes()

    def broken_write(table, where):
        where.write(b"half a table")
        raise OSError("disk full")

    monkeypatch.setattr(store_module.pq, "write_table", broken_write)
    with pytest.raises(OSError, match="disk full"):
        sweep(Grid({"delays": [0, 1]}, seeds=2), tmp_path)
    assert path.read_bytes() == original
    assert not list(tmp_path.glob("*.tmp"))


def test_two_sweeps_cannot_write_one_results_file(tmp_path):
    with ResultStore(tmp_path / RESULTS_FILE):
        with pytest.raises(ValueError, match="another galasim sweep is writing"):
            sweep(Grid({"delays": [0]}, seeds=1), tmp_path)
    sweep(Grid({"delays": [0]}, seeds=1), tmp_path)  # the lock goes with the first store


def test_the_store_batches_writes(tmp_path, monkeypatch):
    writes = []
    real_write = store_module.atomic_write
    monkeypatch.setattr(store_module, "atomic_write", lambda *a: (writes.append(1), real_write(*a)))
    sweep(Grid({"delays": [0, 1, 2, 3]}, seeds=5), tmp_path)
    assert len(writes) == 1  # 20 quick cells, one flush at the end


# ----------------------------------------------------------------------------------------- backends


def test_loky_runs_cells_in_worker_processes(tmp_path):
    grid = Grid({"delays": [0, 1, 2, 4]}, seeds=2)
    results = run_sweep(grid, tmp_path, n_jobs=2, progress=False, cell_fn=fake_cell)
    assert set(results["status"]) == {"ok"}
    assert os.getpid() not in set(results["worker_pid"])
    assert results["empirical"].tolist() == [fake_cell(c.config)["empirical"] for c in grid.cells()]


def test_dask_backend_on_a_local_cluster_over_loopback(tmp_path):
    import distributed  # a test dependency: a missing one must fail, not skip

    grid = Grid({"protocol": ["gala", "allreduce"], "delays": [0, 2]}, seeds=2)
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        results = run_sweep(
            grid, tmp_path, backend="dask", address=cluster.scheduler_address, progress=False,
            cell_fn=fake_cell,
        )
    assert set(results["status"]) == {"ok"}
    assert os.getpid() not in set(results["worker_pid"])
    expected = sweep(grid, tmp_path / "loky")
    pd.testing.assert_series_equal(results["empirical"], expected["empirical"])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"backend": "spark"}, "backend must be one of loky, dask, got 'spark'"),
        ({"backend": "dask"}, "needs the scheduler's address"),
    ],
)
def test_bad_backends(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        run_sweep(Grid({"delays": [0]}, seeds=1), tmp_path, cell_fn=fake_cell, **kwargs)


def test_bench_sweep_scaling_reports_one_row_per_worker_count():
    grid = Grid({"delays": [0, 1]}, seeds=4)
    table = bench_sweep_scaling(repeats=2, grid=grid, jobs=(1, 2), cell_fn=fake_cell)
    assert table["n_jobs"].tolist() == [1, 2] and (table["cells"] == 8).all()
    assert (table["cells_per_s"] > 0).all() and table["speedup"].iloc[0] == 1.0
    assert table["cells_per_s"].tolist() == pytest.approx((8 / table["median_s"]).tolist())


# ------------------------------------------------------------------------------- summary and plots


def test_summary_is_mean_and_std_over_seeds(tmp_path):
    grid = Grid({"protocol": ["gala", "allreduce"], "delays": [0, 2]}, seeds=3)
    failing = Counting(fail_when=lambda c: c["protocol"] == "allreduce" and c["seed"] == 2)
    table = summarize(sweep(grid, tmp_path, failing))
    assert table[["protocol", "delays"]].values.tolist() == [
        ["gala", 0.0], ["gala", 2.0], ["allreduce", 0.0], ["allreduce", 2.0],
    ]
    gala_2 = table.iloc[1]
    values = [0.01 * 3 * (1 + 0.1 * seed) for seed in range(3)]
    assert gala_2["empirical_mean"] == pytest.approx(sum(values) / 3)
    assert gala_2["empirical_std"] == pytest.approx(pd.Series(values).std())
    assert gala_2["bound_holds_fraction"] == pytest.approx(2 / 3)
    assert (gala_2["cells"], gala_2["errors"]) == (3, 0)
    allreduce_0 = table.iloc[2]
    assert (allreduce_0["cells"], allreduce_0["errors"]) == (3, 1)
    assert math.isnan(allreduce_0["bound_holds_fraction"])  # not claimed for all-reduce
    text = format_summary(table)
    header = text.splitlines()[0].split()
    assert "log10_epsilon" in header and "epsilon" not in header  # ε = inf: its exponent is shown
    assert "67%" in text and "n/a" in text


def _is_png(path: Path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_plots_are_written(tmp_path):
    grid = Grid(
        {"protocol": ["gala", "allreduce"], "agents": [4, 8], "delays": [0, 0.5, 1, 2, 4, 8]},
        seeds=2,
    )
    written = plot_sweep(sweep(grid, tmp_path), tmp_path)
    assert [p.name for p in written] == ["distance_vs_delay.png", "throughput_vs_delay.png"]
    assert all(_is_png(p) for p in written)


def test_plots_with_model_string_delays(tmp_path):
    grid = Grid({"delays": [0, "uniform:0.5,1.5", "pareto:1,2.5"]}, seeds=2)
    written = plot_sweep(sweep(grid, tmp_path), tmp_path)
    assert len(written) == 2 and all(_is_png(p) for p in written)


def test_no_plots_without_a_successful_cell(tmp_path):
    results = sweep(Grid({"delays": [0]}, seeds=1), tmp_path, Counting(fail_when=lambda c: True))
    assert plot_sweep(results, tmp_path) == []


# ----------------------------------------------------------------------------- the real simulator


def test_parameter_defaults_are_simulates():
    signature = inspect.signature(simulate).parameters
    for name, parameter in PARAMETERS.items():
        default = signature[name].default
        # simulate's agents=None means "8 for a named topology"; a cell needs the number itself.
        assert parameter.default == (8 if name == "agents" and default is None else default), name


def test_a_small_real_sweep_end_to_end(tmp_path):
    grid = Grid(
        {"protocol": ["gala", "allreduce"], "agents": 4, "iterations": 60, "delays": [0, 2]},
        seeds=2,
    )
    results = run_sweep(grid, tmp_path, n_jobs=2, progress=False)
    assert set(results["status"]) == {"ok"}, results["error"].tolist()
    allreduce = results[results["protocol"] == "allreduce"]
    assert (allreduce["empirical"] == 0).all()
    gala = results[results["protocol"] == "gala"]
    assert (gala["empirical"] > 0).all()
    again = Counting()
    assert sweep(grid, tmp_path, again).equals(results) and again.calls == []
    assert len(plot_sweep(results, tmp_path)) == 2


def test_dask_backend_runs_the_real_simulator(tmp_path):
    import distributed

    grid = Grid({"agents": [4], "iterations": [30], "delays": [0, 1]}, seeds=2)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        results = run_sweep(grid, tmp_path, backend="dask", address=cluster.scheduler_address, progress=False)
    assert set(results["status"]) == {"ok"}
    for cell, row in zip(grid.cells(), results.itertuples()):
        assert row.empirical == simulate(**cell.config).summary["empirical"]
