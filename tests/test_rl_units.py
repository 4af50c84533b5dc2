"""galasim.rl pieces: targets, config, env ids, model init, checkpoints, CLI errors (fast)."""
from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from galasim.rl.buffer import compute_targets
from galasim.rl.config import TrainConfig, make_config, parse_frames
from galasim.rl.envs import resolve_env
from galasim.rl.model import make_model


def test_nstep_returns_by_hand():
    r = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]])
    d = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
    v = torch.tensor([[0.5, 0.1], [0.2, 0.3], [0.4, 0.6]])
    adv, ret = compute_targets(r, d, v, torch.tensor([10.0, 20.0]), gamma=0.9)
    # env 0: R2 = 3 + .9*10 = 12; R1 = 0 (done, no bootstrap); R0 = 1 + .9*0 = 1
    # env 1: R2 = 0 + .9*20 = 18; R1 = 2 + .9*18 = 18.2; R0 = 0 + .9*18.2 = 16.38
    assert torch.allclose(ret, torch.tensor([[1.0, 16.38], [0.0, 18.2], [12.0, 18.0]]))
    assert torch.allclose(adv, ret - v)


def test_gae_by_hand_and_lambda_one_is_nstep():
    r = torch.tensor([[1.0], [2.0]])
    d = torch.zeros(2, 1)
    v = torch.tensor([[0.5], [1.0]])
    nv = torch.tensor([4.0])
    adv, ret = compute_targets(r, d, v, nv, gamma=0.5, gae=True, gae_lambda=0.5)
    delta1 = 2.0 + 0.5 * 4.0 - 1.0        # 3.0
    delta0 = 1.0 + 0.5 * 1.0 - 0.5        # 1.0
    assert torch.allclose(adv.squeeze(1), torch.tensor([delta0 + 0.25 * delta1, delta1]))
    adv1, ret1 = compute_targets(r, d, v, nv, gamma=0.5, gae=True, gae_lambda=1.0)
    adv_n, ret_n = compute_targets(r, d, v, nv, gamma=0.5)
    assert torch.allclose(ret1, ret_n) and torch.allclose(adv1, adv_n)


def test_frames_and_config_errors():
    assert parse_frames("10M") == 10_000_000 and parse_frames("2.5k") == 2500
    with pytest.raises(ValueError, match=r"frames must be .*got 'ten'"):
        parse_frames("ten")
    with pytest.raises(ValueError, match="unknown mode 'fast'; allowed: async, sim"):
        TrainConfig(mode="fast")
    with pytest.raises(ValueError, match=r"'agnets' \(did you mean 'agents'\?\)"):
        TrainConfig.from_dict({"agnets": 3})
    with pytest.raises(ValueError, match="restart_failed=1 applies to GALA in --mode async only"):
        TrainConfig(mode="dist", restart_failed=1)
    with pytest.raises(ValueError, match="unknown acting_graph 'lazy'; allowed: auto, keep, recompute"):
        TrainConfig(acting_graph="lazy")
    with pytest.raises(ValueError, match="unknown rmsprop 'adam'; allowed: torch, tf"):
        TrainConfig(rmsprop="adam")
    with pytest.raises(ValueError, match="threads must be at most 256 .* got 100000"):
        TrainConfig(threads=100_000)
    with pytest.raises(ValueError, match="lr must be a finite number > 0, got inf"):
        TrainConfig(lr=math.inf)
    with pytest.raises(ValueError, match="ent_coef must be a finite number >= 0, got nan"):
        TrainConfig(ent_coef=math.nan)
    with pytest.raises(ValueError, match="vf_coef must be a finite number >= 0, got -1"):
        TrainConfig(vf_coef=-1)
    with pytest.raises(ValueError, match=r"stop_return must be a finite number \(a mean true return\), got inf"):
        TrainConfig(stop_return=math.inf)
    with pytest.raises(ValueError, match="gae must be true or false, got 'false'"):
        TrainConfig.from_dict({"gae": "false"})
    with pytest.raises(ValueError, match="hidden must be an integer >= 1, got 0"):
        TrainConfig(hidden=0)
    with pytest.raises(ValueError, match=r"sync_freq must be an integer >= 0 or 'inf', got '-1'$"):
        TrainConfig(sync_freq="-1")  # the text the user gave, not the float it parsed to
    cfg = make_config("gala-paper", frames="1M")
    assert (cfg.agents, cfg.envs_per_agent, cfg.lr, cfg.sync_freq) == (4, 16, 1.4e-3, math.inf)


def test_config_file_yaml_and_toml(tmp_path):
    (tmp_path / "a.yaml").write_text("env: CartPole-v1\nenvs-per-agent: 3\n")
    (tmp_path / "b.toml").write_text('env = "CartPole-v1"\nlr = 0.002\n')
    assert make_config(None, tmp_path / "a.yaml").envs_per_agent == 3
    assert make_config(None, tmp_path / "b.toml", lr=None).lr == 0.002
    assert make_config(None, tmp_path / "b.toml", lr=0.1).lr == 0.1  # flags override the file


def test_a_broken_config_file_is_one_line_naming_the_file_and_the_place(tmp_path):
    # PyYAML's own message spans several lines (the text, a caret); the CLI prints one.
    (tmp_path / "broken.yaml").write_text("env: CartPole-v1\nlr: [1e-3,\n")
    run = tmp_path / "r"
    proc = _cli("train", "--config", str(tmp_path / "broken.yaml"), "--out", str(run))
    assert proc.returncode == 2 and not run.exists(), proc.stderr
    assert proc.stderr == (f"galasim train: error: cannot parse config file {tmp_path / 'broken.yaml'}: expected "
                           "the node content, but found '<stream end>' (line 3, column 1)\n")


def test_env_ids():
    assert resolve_env("PongNoFrameskip-v4").name == "pong"
    assert resolve_env("ALE/Breakout-v5").name == "breakout"
    assert resolve_env("SpaceInvadersNoFrameskip-v4").name == "space_invaders"
    assert resolve_env("CartPole-v1").kind == "gym"
    with pytest.raises(ValueError, match=r"unknown environment 'CartPol-v1'; close matches: CartPole-v1"):
        resolve_env("CartPol-v1")
    with pytest.raises(ValueError, match=r"close matches:.*pong"):
        resolve_env("Pongg")


def test_identical_initialisation_from_the_run_seed():
    _, a = make_model((4, 84, 84), 6, seed=7)
    _, b = make_model((4, 84, 84), 6, seed=7)
    _, c = make_model((4, 84, 84), 6, seed=8)
    assert torch.equal(a, b) and not torch.equal(a, c)
    model, flat = make_model((4,), 2, seed=0)
    with torch.no_grad():
        flat.zero_()  # parameters are views of the flat vector: one op mixes the whole network
    assert all(float(p.detach().abs().sum()) == 0 for p in model.parameters())


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "galasim.cli", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


def test_cli_unknown_env_is_one_line(tmp_path):
    proc = _cli("train", "--env", "Pong-v9x", "--out", str(tmp_path / "r"), "--frames", "100")
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "unknown environment 'Pong-v9x'" in proc.stderr and "close matches" in proc.stderr


@pytest.mark.parametrize("args, message", [
    (("--frames", "1e30"), "frames must be at most 1e12 frames"),
    (("--envs-per-agent", "100000"), "gives a learner 100000 simulators; a learner steps at most 1024"),
    (("--algo", "a2c", "--agents", "4", "--envs-per-agent", "512"), "gives a learner 2048 simulators"),
    (("--agents", "100000"), "(100001 processes, 600,000 parameter vectors of 9,155) needs about 23.9 TiB"),
    (("--agents", "4", "--peers", "9"), "must be an integer from 1 to 3, got 9"),
    (("--mode", "sim", "--compute", "stragglers:5,4"), "straggler fraction must be in [0, 1], got 5.0"),
    (("--mode", "sim", "--delays", "fast"), "unknown delay model 'fast'"),
], ids=["frames", "envs", "a2c-envs", "agents", "peers", "compute", "delays"])
def test_cli_refuses_an_impossible_run_in_one_line_and_writes_nothing(tmp_path, args, message):
    # "--agents 100000": 100,001 processes of >= 250 MiB, refused before the repair's n(n-1) message
    # slots are even listed (the vectors: 5 per learner and one per ring edge).
    run = tmp_path / "r"
    proc = _cli("train", "--env", "CartPole-v1", "--out", str(run), "--no-progress", *args)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0, proc.stderr
    assert message in proc.stderr
    assert not run.exists()  # a refused run touches nothing (an earlier run's config.json survives)


def test_the_memory_estimate_counts_every_message_slot_the_repair_can_create(tmp_path, monkeypatch):
    import galasim._validation
    from galasim.rl.train import PROCESS_BYTES, SIMULATOR_BYTES, _plan

    # 8 learners on a ring: 5 vectors each, then 8 edges (first check) or all 56 = 8 * 7 slots the
    # repair rule can create (second); a wide MLP makes the vectors count.
    cfg = TrainConfig(env="CartPole-v1", agents=8, envs_per_agent=2, hidden=1024, device="cpu",
                      out=str(tmp_path))
    dim = _plan(cfg).flat.numel()
    assert len(_plan(cfg).slots) == 56
    base = 9 * PROCESS_BYTES + 16 * SIMULATOR_BYTES["gym"]
    limit = base + (40 + 8) * dim * 4  # the first check passes, the second does not
    monkeypatch.setattr(galasim._validation, "memory_limit", lambda: limit)
    with pytest.raises(ValueError, match=rf"\(9 processes, 96 parameter vectors of {dim:,}\)"):
        _plan(cfg)
    monkeypatch.setattr(galasim._validation, "memory_limit", lambda: base + 96 * dim * 4)
    assert len(_plan(cfg).slots) == 56


def test_an_evaluation_video_appears_only_when_complete(tmp_path):
    from types import SimpleNamespace

    from galasim.rl.evaluate import _finish_video, _open_video, _video_path

    atari = SimpleNamespace(spec=SimpleNamespace(kind="atari"))
    path = _video_path(tmp_path / "videos" / "pong.mp4", atari)
    for keep in (False, True):  # an interrupted evaluation, then a complete one
        writer = _open_video(path)
        for _ in range(5):
            writer.write(np.zeros((336, 336, 3), dtype=np.uint8))
        writer.release()
        _finish_video(path, keep)
        assert path.exists() == keep and not list(path.parent.glob(".*"))
    (tmp_path / "a_file").write_text("")
    with pytest.raises(ValueError, match="cannot create its folder"):
        _video_path(tmp_path / "a_file" / "pong.mp4", atari)


def test_cli_corrupt_checkpoint_is_one_line(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text(
        '{"env": "CartPole-v1", "agents": 2, "envs_per_agent": 2, "frames": 1000, "out": "%s"}' % run)
    (run / "checkpoints" / "learner0.pt").write_bytes(b"PK\x03\x04 this is not a checkpoint")
    for args in (("train", "--out", str(run), "--resume"), ("evaluate", str(run), "--episodes", "1")):
        proc = _cli(*args)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.strip().count("\n") == 0, proc.stderr
        assert "learner0.pt' is corrupt or not a galasim checkpoint" in proc.stderr


def test_cli_help_lists_train_and_evaluate():
    out = _cli("--help").stdout
    assert "train" in out and "evaluate" in out
    assert "--resume" in _cli("train", "--help").stdout


def test_sweep_does_not_import_torch():
    code = "import galasim.cli, galasim.rl, galasim.gossip, sys; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without a GPU")
def test_cuda_request_without_gpu_is_clear():
    from galasim.rl.learner import resolve_device

    with pytest.raises(ValueError, match="device 'cuda' requested but torch sees no CUDA device"):
        resolve_device("cuda")


def test_bench_train_quick_table():
    from galasim.bench_train import bench_train

    table = bench_train(quick=True, repeats=1, env="CartPole-v1", total_envs=4, frames=800)
    assert list(table["config"]) == ["A2C 1x4", "GALA 2x2", "GALA 4x1", "A2C 1x4, glibc malloc",
                                     "GALA 4x1, acting graph kept", "A2C 1x4, 2 threads", "SB3 A2C 1x4",
                                     "SB3 A2C 1x4, 2 threads"]
    table = table.iloc[:6]  # the SB3 rows are NaN unless the optional stable-baselines3 is installed
    assert (table["steps_per_s"] > 0).all() and table["ratio_vs_a2c"].iloc[0] == 1.0
    shares = table[["share_env", "share_act", "share_update", "share_gossip"]].sum(axis=1)
    assert ((shares - 1).abs() < 1e-9).all()
    assert table["bound"].iloc[0] > 0
    # one efficiency per repeat, each against its own repeat's bound; the median is reported
    efficiencies = [float(e) for e in table["runs_efficiency"].iloc[0].split()]
    assert len(efficiencies) == 1 and table["efficiency"].iloc[0] == pytest.approx(efficiencies[0], abs=5e-4)
    assert table["efficiency"].iloc[0] == pytest.approx(table["steps_per_s"].iloc[0] / table["bound"].iloc[0])
    assert all(table[f"net_alone_{v}"].iloc[0] > 0 for v in ("nchw", "torch_rmsprop", "glibc_malloc"))
    assert "ratio_vs_sb3" in table.columns  # NaN without the optional stable-baselines3


def test_bench_train_adds_bf16_mixed_on_atari():
    # CartPole's MLP has no bfloat16 option, so the quick table above cannot show these rows.
    from galasim.bench_train import PIXEL_CONFIGS, _label, _network_alone

    assert [_label(c, 16) for c in PIXEL_CONFIGS] == ["A2C 1x16, bf16-mixed", "GALA 2x8, bf16-mixed"]
    assert _network_alone("PongNoFrameskip-v4", 2, 1, "bf16_mixed") > 0


def test_paired_efficiency_closed_form():
    from galasim.bench_train import paired_efficiency

    # env 300 and net 600 steps/s: 1/300 + 1/600 = 1/200 s per step; env 150 and net 150: 1/75
    bounds, efficiencies = paired_efficiency([180.0, 60.0], [300.0, 150.0], [600.0, 150.0])
    assert bounds == pytest.approx([200.0, 75.0]) and efficiencies == pytest.approx([0.9, 0.8])
    with pytest.raises(ValueError):  # a repeat without its bound is an error, not a silent drop
        paired_efficiency([180.0, 60.0], [300.0], [600.0])


def test_nhwc_input_computes_the_same_network():
    # The layout is an implementation detail: logits, value and gradients agree with NCHW's.
    model, params = make_model((4, 84, 84), 6, seed=1)
    obs = torch.randint(0, 256, (3, 4, 84, 84), dtype=torch.uint8)
    results = []
    for layout in (True, False):
        model.channels_last = layout
        model.zero_grad()
        logits, value = model(obs)
        (logits.sum() + value.sum()).backward()
        results.append((logits.detach(), value.detach(), [p.grad.clone() for p in model.parameters()]))
    (l1, v1, g1), (l2, v2, g2) = results
    assert torch.allclose(l1, l2, atol=1e-5) and torch.allclose(v1, v2, atol=1e-5)
    assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-5) for a, b in zip(g1, g2))
    assert params.data_ptr() == next(model.parameters()).data_ptr()  # still views of the flat vector


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bf16_mixed_trunk_agrees_with_float32_to_bfloat16_rounding(seed):
    # The same float32 parameters; the trunk computes in bfloat16 (seen by a hook), the heads and
    # every output and gradient are float32, and they agree with the float32 network to within
    # bfloat16's rounding (8 significant bits: relative steps of 2**-8 = 0.4% per operation).
    torch.manual_seed(seed)
    obs = torch.randint(0, 256, (8, 4, 84, 84), dtype=torch.uint8)
    results = []
    for precision in ("fp32", "bf16-mixed"):
        model, params = make_model((4, 84, 84), 6, seed=seed, precision=precision)
        trunk_dtypes = []
        model.trunk[0].register_forward_hook(lambda module, args, out: trunk_dtypes.append(out.dtype))
        logits, value = model(obs)
        loss = -torch.log_softmax(logits, -1)[:, 0].mean() + value.pow(2).mean()
        loss.backward()
        grads = torch.cat([p.grad.flatten() for p in model.parameters()])
        assert logits.dtype == value.dtype == grads.dtype == params.dtype == torch.float32
        assert trunk_dtypes == [torch.float32 if precision == "fp32" else torch.bfloat16]
        results.append((logits.detach(), value.detach(), grads, params))
    (l32, v32, g32, p32), (l16, v16, g16, p16) = results
    assert torch.equal(p32, p16)  # identical initialisation whatever the precision

    def rel(a, b):
        return float((a - b).norm() / b.norm())

    assert not torch.equal(l16, l32)  # bfloat16 arithmetic did happen
    assert rel(l16, l32) < 0.03 and rel(v16, v32) < 0.05 and rel(g16, g32) < 0.08


def test_bf16_mixed_is_refused_for_vector_observations():
    with pytest.raises(ValueError, match="applies to the Nature CNN"):
        make_model((4,), 2, seed=0, precision="bf16-mixed")
    with pytest.raises(ValueError, match="unknown precision 'bf16'; allowed: fp32, bf16-mixed"):
        TrainConfig(precision="bf16")


def test_bf16_mixed_warns_once_where_bfloat16_would_be_emulated(monkeypatch, capsys):
    import galasim.rl.model as model

    cpu = torch.device("cpu")
    monkeypatch.setattr(model, "native_bf16", lambda device: False)
    model.warn_if_emulated("bf16-mixed", cpu)
    model.warn_if_emulated("fp32", cpu)  # float32 never warns
    assert capsys.readouterr().err.splitlines() == [
        "galasim train: warning: this CPU has no native bfloat16, so --precision bf16-mixed is emulated "
        "and slower than fp32"]
    monkeypatch.setattr(model, "native_bf16", lambda device: True)
    model.warn_if_emulated("bf16-mixed", cpu)
    assert capsys.readouterr().err == ""


def test_learning_curve_plot(tmp_path):
    from galasim.rl.plots import episodes, plot_runs

    logs = tmp_path / "run" / "logs"
    logs.mkdir(parents=True)
    for rank in range(2):
        (logs / f"learner{rank}_episodes.csv").write_text(
            "learner,frames,total_frames,time,return,length\n"
            + "".join(f"{rank},{k * 10},{k * 20 + rank},0,{k + rank},5\n" for k in range(150)))
    (logs / "network.csv").write_text("time,total_frames,running,distance,diameter,empirical,L,max_staleness\n"
                                      "0,0,0,0,0,0,0,0\n1,100,2,0.5,1,0.5,3,1\n")
    table = episodes(tmp_path / "run")
    assert table["total_frames"].is_monotonic_increasing and len(table) == 300
    assert table["mean100"].iloc[-1] == table["return"].tail(100).mean()
    assert plot_runs({"r": tmp_path / "run"}, tmp_path / "c.png").stat().st_size > 1000
    # without a consensus distance to show (A2C), one panel: a narrower figure
    (logs / "network.csv").unlink()
    import matplotlib.image

    one_panel = matplotlib.image.imread(plot_runs({"r": tmp_path / "run"}, tmp_path / "a2c.png"))
    assert one_panel.shape[1] < 0.7 * matplotlib.image.imread(tmp_path / "c.png").shape[1]


def test_plot_command_scores_agree_with_the_runs_summaries(tmp_path):
    """``galasim plot`` on two committed Pong runs: its table against each run's summary.json
    (written by the training code) and against a brute-force window of the episode logs."""
    docs = Path(__file__).resolve().parents[1] / "docs" / "runs"
    (tmp_path / "started" / "logs").mkdir(parents=True)  # a run that has finished no game yet
    header = "learner,frames,total_frames,time,return,length\n"
    (tmp_path / "started" / "logs" / "learner0_episodes.csv").write_text(header)
    proc = _cli("plot", str(docs / "pong_a2c1x8"), f"GALA 4x2={docs / 'pong_gala4x2'}", str(tmp_path / "started"),
                "--out", str(tmp_path / "c.png"), "--csv", str(tmp_path / "s.csv"))
    assert proc.returncode == 0, proc.stderr
    table = pd.read_csv(tmp_path / "s.csv").set_index("run")
    assert list(table.index) == ["pong_a2c1x8", "GALA 4x2", "started"] and (tmp_path / "c.png").stat().st_size > 1000
    assert table.loc["started", "games"] == 0 and table.loc["started"].drop("games").isna().all()
    for label, run in (("pong_a2c1x8", "pong_a2c1x8"), ("GALA 4x2", "pong_gala4x2")):
        summary = json.loads((docs / run / "summary.json").read_text())
        assert table.loc[label, "mean_last_100"] == pytest.approx(summary["mean_return_last_100"], abs=1e-9)
        games = pd.concat([pd.read_csv(f) for f in sorted((docs / run / "logs").glob("learner*_episodes.csv"))])
        returns = games.sort_values("total_frames", kind="stable")["return"].to_numpy(float)
        windows = np.convolve(returns, np.ones(100), "valid") / 100
        assert table.loc[label, "games"] == len(returns)
        assert table.loc[label, "best_mean_100"] == pytest.approx(windows.max(), abs=1e-9)
    # bad input: one line, exit status 2
    for args, message in ((["plot", str(tmp_path)], "is not a galasim train run folder"),
                          (["plot", str(docs / "pong_a2c1x8"), str(docs / "pong_a2c1x8")], "two runs are labelled")):
        proc = _cli(*args)
        assert proc.returncode == 2 and message in proc.stderr and proc.stderr.strip().count("\n") == 0, proc.stderr


def test_bench_dist_quick_table():
    from galasim.bench_dist import bench_dist

    table = bench_dist(quick=True, repeats=1).set_index("measure")
    assert list(table.index) == ["async GALA 2x8", "dist GALA 2x8", "gloo exchange (loopback)"]
    assert (table["frames_per_s"].iloc[:2] > 0).all() and table["ratio_vs_async"].iloc[0] == 1.0
    exchange = table.loc["gloo exchange (loopback)"]
    measured = exchange["seconds"]  # a figure was taken (any positive one: never a speed goal here)
    assert np.isfinite(measured) and measured > 0
    assert exchange["megabytes"] == 4 * 1000 / 1e6


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_learner_processes_set_glibc_malloc_and_galasim_malloc_glibc_keeps_the_defaults():
    code = "from galasim.rl.allocator import keep_freed_blocks; print(keep_freed_blocks())"
    for env, expected in (({}, "True"), ({"GALASIM_MALLOC": "glibc"}, "False")):
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                              env={**os.environ, **env})
        assert proc.stdout.strip() == expected, proc.stderr


@pytest.mark.parametrize("env, n", [("PongNoFrameskip-v4", 2), ("CartPole-v1", 4)])
def test_acting_graph_keep_and_recompute_take_the_same_updates(env, n):
    """--acting-graph: backpropagating through the acting forwards or through one second forward
    over the rollout is the same A2C update, up to rounding (steps here are ~7e-3 per entry)."""
    from galasim.rl.learner import Learner

    runs = []
    for mode in ("keep", "recompute"):
        cfg = make_config(None, None, env=env, envs_per_agent=n, acting_graph=mode, out="unused")
        learner = Learner(cfg, 0, torch.device("cpu"), n)
        assert learner.keep_graph == (mode == "keep")
        steps = []
        for _ in range(3):
            before = learner.params.clone()
            stats = learner.iterate()
            steps.append((learner.params - before, stats, learner.storage.rewards.clone(),
                          learner.storage.dones.clone()))
        learner.close()
        runs.append(steps)
    for (d1, s1, r1, e1), (d2, s2, r2, e2) in zip(*runs):
        assert torch.equal(r1, r2) and torch.equal(e1, e2)  # the same actions, so the same transitions
        assert d1.abs().max() > 1e-3 and torch.allclose(d1, d2, rtol=0, atol=1e-5)
        assert s1.value_loss == pytest.approx(s2.value_loss, rel=1e-4)
        assert s1.entropy == pytest.approx(s2.entropy, rel=1e-5)


def test_rmsprop_tf_reaches_the_learner_and_its_checkpoint(tmp_path):
    """--rmsprop tf: the learner steps TensorFlow's RMSprop (averages from 1), and a resumed learner
    continues from the saved averages rather than starting again from 1."""
    from galasim.rl.learner import Learner

    cfg = make_config(None, None, env="CartPole-v1", envs_per_agent=2, rmsprop="tf", out=str(tmp_path))
    learner = Learner(cfg, 0, torch.device("cpu"), 2)
    assert learner.optimizer.tf_like and torch.equal(learner.optimizer.square_avg,
                                                     torch.ones_like(learner.params))
    learner.iterate()
    saved = learner.state_dict()
    resumed = Learner(cfg, 0, torch.device("cpu"), 2)
    resumed.load_state_dict(saved)
    assert torch.equal(resumed.optimizer.square_avg, learner.optimizer.square_avg)
    assert not torch.equal(resumed.optimizer.square_avg, torch.ones_like(learner.params))
    learner.close()
    resumed.close()


def test_a_resume_restores_the_gossip_counters_but_not_the_staleness():
    from galasim.gossip.buffer import GossipStats
    from galasim.rl.checkpoint import restore_gossip_stats

    saved = {"iterations": 40, "mixes": 31, "messages_sent": 38, "messages_skipped": 2, "waits": 1,
             "wait_seconds": 0.25, "staleness": 3, "max_staleness": 6}
    stats = GossipStats()
    restore_gossip_stats(stats, {"gossip": saved})
    # the counters go on; staleness decides when the learner blocks, and no message survived the stop
    assert stats == GossipStats(**{**saved, "staleness": 0})
    old = GossipStats()  # a checkpoint written before the counters were saved
    restore_gossip_stats(old, {"gossip": {"max_staleness": 6}})
    assert old == GossipStats(max_staleness=6)
    fresh = GossipStats()  # a fresh start: no checkpoint
    restore_gossip_stats(fresh, None)
    assert fresh == GossipStats()


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 8), dim=st.integers(1, 5000),
       offset=st.sampled_from([0.0, 1.0, 1e3]), scale=st.sampled_from([1e-6, 1e-2, 1.0]))
def test_monitor_spread_matches_its_definition(seed, n, dim, offset, scale):
    # The monitor's Gram-matrix form against the definitions, pair by pair in float64; the offset
    # is what all learners share (the centring must cancel it), the scale their spread.
    from galasim.rl.monitor import consensus, spread

    rows = offset + scale * np.random.default_rng(seed).standard_normal((n, dim))
    published = torch.tensor(rows, dtype=torch.float32)
    x = published.numpy().astype(np.float64)
    to_mean = np.linalg.norm(x - x.mean(0), axis=1)
    diameter = max(np.linalg.norm(a - b) for a in x for b in x)
    distances, measured = spread(published)
    assert distances == pytest.approx(to_mean, rel=1e-9, abs=1e-12 * scale)
    assert measured == pytest.approx(diameter, rel=1e-9, abs=1e-12 * scale)
    assert consensus(published) == pytest.approx((to_mean.max(), diameter), rel=1e-9, abs=1e-12 * scale)
    assert torch.equal(published, torch.tensor(rows, dtype=torch.float32))  # the input is not modified
    # The parent's monitor reads into a float64 buffer and lets spread() centre it in place
    buffer = published.to(torch.float64)
    assert spread(buffer, overwrite=True) == (distances, measured)
    assert torch.allclose(buffer.mean(0), torch.zeros(dim, dtype=torch.float64), atol=1e-9 * (offset + scale))
