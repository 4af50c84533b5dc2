"""``galasim bench train``: A2C against GALA-A2C at equal total simulators, in one run.

Every configuration is a real ``galasim.train`` run (async mode, one process per learner, CPU, one
torch thread each) on the same environment, with the same total number of simulators (16 by
default): A2C 1 x 16, GALA 2 x 8 and GALA 4 x 4. The steady-state rate is read from the parent's
network monitor (total frames over time, from the first row where every learner has started, so
process start-up is excluded). The time split comes from each learner's own timers (environment
steps, acting forwards, the A2C update, gossip), summed over learners.

Two bounds are measured in the same run, for the efficiency figure: the environment alone (the
vector env stepping random actions, 16 simulators) and the network alone (acting forwards plus
the A2C update on a batch of the same size, no environment). A serial learner cannot beat
``1 / (1/env + 1/net)``; ``efficiency`` is A2C's end-to-end rate over that bound, within each
repeat (every repeat measures every configuration and both bounds once), median over repeats.

Former implementations are measured in the same run as baselines: A2C end to end with glibc's
malloc defaults, GALA 4 x 4 end to end with the acting graph kept (``--acting-graph keep``, which
``auto`` replaced below 8 simulators per learner), and the network alone with NCHW convolution
input, PyTorch's per-tensor RMSprop or glibc's malloc defaults (each network measurement in a
fresh process, as a learner runs). A2C and Stable-Baselines3's A2C are also measured with two
torch threads, side by side. On Atari, A2C and GALA 2 x 8 are measured with ``--precision
bf16-mixed`` too (galasim's option: the Nature CNN in bfloat16), with the network alone and the
efficiency of that A2C against its own bound.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import math
import multiprocessing
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

# The configurations, run interleaved. After the three of the comparison come baselines: A2C with
# glibc's malloc defaults (before galasim/rl/allocator.py), GALA 4 x 4 with the acting graph kept
# (before --acting-graph auto recomputed it for learners of fewer than 8 simulators), and A2C with
# two torch threads (the one-thread default's alternative for a single learner on 2 cores).
CONFIGS = (
    {"algo": "a2c", "learners": 1}, {"algo": "gala", "learners": 2}, {"algo": "gala", "learners": 4},
    {"algo": "a2c", "learners": 1, "malloc": "glibc"}, {"algo": "gala", "learners": 4, "acting_graph": "keep"},
    {"algo": "a2c", "learners": 1, "threads": 2},
)
# With image observations only (the Nature CNN): --precision bf16-mixed, A2C and GALA 2 x 8.
PIXEL_CONFIGS = ({"algo": "a2c", "learners": 1, "precision": "bf16-mixed"},
                 {"algo": "gala", "learners": 2, "precision": "bf16-mixed"})


def _label(config: dict, total_envs: int) -> str:
    learners = config["learners"]
    notes = {"malloc": {"glibc": ", glibc malloc"}, "acting_graph": {"keep": ", acting graph kept"},
             "threads": {2: ", 2 threads"}, "precision": {"bf16-mixed": ", bf16-mixed"}}
    return (f"{'A2C' if config['algo'] == 'a2c' else 'GALA'} {learners}x{total_envs // learners}"
            + "".join(notes[key][config[key]] for key in notes if key in config))


@contextlib.contextmanager
def _malloc(kind: str):
    """Processes started inside keep glibc's malloc defaults when ``kind`` is "glibc"."""
    saved = os.environ.get("GALASIM_MALLOC")
    if kind == "glibc":
        os.environ["GALASIM_MALLOC"] = "glibc"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("GALASIM_MALLOC", None)
        else:
            os.environ["GALASIM_MALLOC"] = saved


def _one_run(env: str, algo: str, learners: int, total_envs: int, frames: int, seed: int,
             acting_graph: str = "auto", threads: int = 1, precision: str = "fp32") -> dict:
    from galasim.rl.train import train

    if algo == "gala":
        shape = {"agents": learners, "envs_per_agent": total_envs // learners}
    else:
        shape = {"agents": 1, "envs_per_agent": total_envs}
    with tempfile.TemporaryDirectory() as out:
        r = train(env=env, algo=algo, frames=frames, out=out, progress=False, tensorboard=False,
                  sync_freq="inf" if algo == "gala" else 4, seed=seed, log_every=0.5,
                  checkpoint_every=10 * frames, acting_graph=acting_graph, threads=threads,
                  precision=precision, **shape)
        net = pd.read_csv(Path(out) / "logs" / "network.csv")
        rows = [pd.read_csv(Path(out) / "logs" / f"learner{rank}_train.csv").iloc[-1]
                for rank in range(r.summary["learners"])]
    frameskip = 4 if _is_atari(env) else 1
    # Steady state: the monitor rows while every learner is past its first update and short of its
    # budget (process start-up and the stragglers' tail are excluded).
    steady = net[net["running"] == r.summary["learners"]]
    if len(steady) >= 3:
        a, b = steady.iloc[0], steady.iloc[-1]
        rate = (b["total_frames"] - a["total_frames"]) / (b["time"] - a["time"])
    else:  # too short to see a steady state (quick mode): whole-run rate, start-up included
        rate = r.summary["fps"]
    split = {k: sum(float(row[f"t_{k}"]) for row in rows) for k in ("env", "act", "update", "gossip")}
    total = sum(split.values()) or 1.0
    return {"frames_per_s": rate, "steps_per_s": rate / frameskip,
            **{f"share_{k}": v / total for k, v in split.items()}}


def _is_atari(env: str) -> bool:
    from galasim.rl.envs import resolve_env

    return resolve_env(env).kind == "atari"


def _env_alone(env: str, num_envs: int, steps: int) -> float:
    """Agent steps/s of the vector env alone, random actions."""
    from galasim.rl.envs import VecEnv

    venv = VecEnv(env, num_envs, seed=0)
    venv.reset()
    rng = np.random.default_rng(0)
    n = venv.action_space.n
    started = time.perf_counter()
    for _ in range(steps):
        venv.step(rng.integers(0, n, size=num_envs))
    elapsed = time.perf_counter() - started
    venv.close()
    return steps * num_envs / elapsed


# The network alone as galasim runs it, and each former implementation it is measured against:
# the convolutions' NCHW input (before NHWC), PyTorch's per-tensor RMSprop (before FlatRMSprop)
# and glibc's malloc defaults (before galasim/rl/allocator.py); on Atari also --precision bf16-mixed.
NETWORK_VARIANTS = ("galasim", "nchw", "torch_rmsprop", "glibc_malloc")
PIXEL_VARIANTS = ("bf16_mixed",)


def _network_alone_in_new_process(env: str, num_envs: int, updates: int, variant: str) -> float:
    """:func:`_network_alone` in a fresh process, as a learner runs (a malloc setting is per process)."""
    context = multiprocessing.get_context("spawn")
    with _malloc("glibc" if variant == "glibc_malloc" else "galasim"), \
            concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        return pool.submit(_network_alone, env, num_envs, updates, variant).result()


def _network_alone(env: str, num_envs: int, updates: int, variant: str = "galasim") -> float:
    """Agent steps/s of acting forwards plus the A2C update, on stored observations, 1 thread
    (``variant``: one of ``NETWORK_VARIANTS``)."""
    import torch

    from galasim.rl.config import TrainConfig
    from galasim.rl.learner import Learner, configure_process

    configure_process(1)
    cfg = TrainConfig(env=env, algo="a2c", agents=1, envs_per_agent=num_envs, out="unused",
                      precision="bf16-mixed" if variant == "bf16_mixed" else "fp32")
    learner = Learner(cfg, 0, torch.device("cpu"), num_envs)
    learner.model.channels_last = variant != "nchw"
    if variant == "torch_rmsprop":
        learner.optimizer = torch.optim.RMSprop(learner.model.parameters(), lr=cfg.lr, eps=cfg.rms_eps,
                                                alpha=cfg.rms_alpha)
    obs = learner.obs
    zeros = np.zeros(num_envs)
    no_done = np.zeros(num_envs, dtype=bool)

    def fake_step(actions):  # the environment costs nothing: same observation, reward 0
        return obs.numpy(), zeros, no_done, []

    learner.envs.step = fake_step
    learner.iterate()
    started = time.perf_counter()
    for _ in range(updates):
        learner.iterate()
    elapsed = time.perf_counter() - started
    learner.close()
    return updates * cfg.n_steps * num_envs / elapsed


def _sb3_alone(env: str, num_envs: int, steps: int, threads: int = 1) -> float:
    """Agent steps/s of Stable-Baselines3's A2C (CnnPolicy/MlpPolicy, its defaults: 5-step
    rollouts, RMSprop 7e-4) on the *same* vector env as galasim's learners, ``threads`` torch
    threads, in this process (nan when stable-baselines3, an optional bench dependency, is not
    installed)."""
    try:
        from stable_baselines3 import A2C
        from stable_baselines3.common.vec_env import VecEnv as SB3VecEnv
    except ImportError:
        return math.nan
    import torch

    from galasim.rl.envs import VecEnv

    class Adapter(SB3VecEnv):
        # galasim's VecEnv (AtariVectorEnv with the DeepMind settings) behind SB3's interface.
        def __init__(self):
            self.venv = VecEnv(env, num_envs, seed=0)
            super().__init__(num_envs, self.venv.observation_space, self.venv.action_space)

        def reset(self):
            return self.venv.reset()

        def step_async(self, actions):
            self.actions = np.asarray(actions, dtype=np.int64)

        def step_wait(self):
            obs, reward, done, _ = self.venv.step(self.actions)
            return obs, reward.astype(np.float32), done, [{} for _ in range(num_envs)]

        def close(self):
            self.venv.close()

        def get_attr(self, name, indices=None):
            return [None] * num_envs

        def set_attr(self, name, value, indices=None):
            pass

        def env_method(self, name, *args, indices=None, **kwargs):
            return [None] * num_envs

        def env_is_wrapped(self, wrapper_class, indices=None):
            return [False] * num_envs

    torch.set_num_threads(threads)
    venv = Adapter()
    policy = "CnnPolicy" if len(venv.observation_space.shape) == 3 else "MlpPolicy"
    model = A2C(policy, venv, device="cpu", seed=0, verbose=0)
    model.learn(total_timesteps=num_envs * 5 * 4)  # warm-up
    started = time.perf_counter()
    model.learn(total_timesteps=steps, reset_num_timesteps=False)
    elapsed = time.perf_counter() - started
    venv.close()
    return steps / elapsed


def paired_efficiency(rates: list[float], env_rates: list[float],
                      net_rates: list[float]) -> tuple[list[float], list[float]]:
    """Each repeat's serial bound ``1 / (1/env + 1/net)`` and its end-to-end rate over that bound.

    >>> paired_efficiency([90.0, 40.0], [200.0, 100.0], [200.0, 100.0])
    ([100.0, 50.0], [0.9, 0.8])
    """
    bounds = [1.0 / (1.0 / e + 1.0 / n) for e, n in zip(env_rates, net_rates, strict=True)]
    return bounds, [r / b for r, b in zip(rates, bounds, strict=True)]


def bench_train(quick: bool = False, repeats: int = 3, env: str = "PongNoFrameskip-v4",
                total_envs: int = 16, frames: int | None = None) -> pd.DataFrame:
    """Throughput of A2C (1 x total_envs) and GALA-A2C (2 x, 4 x) at equal simulators, same run.

    Parameters
    ----------
    quick : bool
        Tiny budgets (smoke test); the figures are then meaningless.
    repeats : int
        Runs per configuration; medians are reported.
    env : str
        Environment id.
    total_envs : int
        Simulators in total, split evenly over the learners.
    frames : int, optional
        Frames per run (default 60,000; 2,000 with ``quick``).

    Returns
    -------
    pandas.DataFrame
        One row per configuration: ``config``, ``frames_per_s``, ``steps_per_s`` (medians),
        ``ratio_vs_a2c``, ``ratio_vs_sb3`` (against SB3's A2C with one thread), the time shares and,
        on the A2C rows of each precision, ``env_alone``, ``net_alone`` (that precision's network),
        ``bound`` (agent steps/s), ``efficiency`` and ``runs_efficiency`` (A2C's rate over the bound
        within each repeat, and their median: the bound and the medians of the table are not
        paired); on the first A2C row also ``net_alone_nchw``, ``net_alone_torch_rmsprop`` and
        ``net_alone_glibc_malloc`` (the network with the NCHW convolution input, PyTorch's
        per-tensor RMSprop or glibc's malloc defaults: what galasim used before NHWC,
        ``FlatRMSprop`` and ``galasim.rl.allocator``). The last two rows measure
        Stable-Baselines3's A2C on the same environment with one and two torch threads (NaN
        without the optional ``stable-baselines3``).
    """
    frames = frames or (2000 if quick else 60_000)
    pixels = _is_atari(env)
    configs = CONFIGS + (PIXEL_CONFIGS if pixels else ())
    runs = {_label(config, total_envs): [] for config in configs}
    env_rates, net_rates = [], {variant: [] for variant in NETWORK_VARIANTS + (PIXEL_VARIANTS if pixels else ())}
    sb3_runs = {threads: [] for threads in (1, 2)}
    # Each repeat measures everything once, interleaved, so that all see the same machine; A2C's
    # efficiency is then taken within each repeat, against that repeat's bound: the environment-alone
    # rate moves between repeats, and pairing keeps that drift out of the ratio.
    for seed in range(repeats):
        for config in configs:
            options = {k: v for k, v in config.items() if k in ("acting_graph", "threads", "precision")}
            with _malloc(config.get("malloc", "galasim")):
                runs[_label(config, total_envs)].append(
                    _one_run(env, config["algo"], config["learners"], total_envs, frames, seed, **options))
        env_rates.append(_env_alone(env, total_envs, 50 if quick else 3000))
        for variant in net_rates:
            net_rates[variant].append(_network_alone_in_new_process(env, total_envs, 3 if quick else 60, variant))
        for threads in sb3_runs:
            sb3_runs[threads].append(_sb3_alone(env, total_envs, 800 if quick else 16_000, threads))
    rows = []
    for label, measured in runs.items():
        row = {"config": label}
        for key in measured[0]:
            row[key] = statistics.median(r[key] for r in measured)
        row["runs_steps_per_s"] = " ".join(f"{r['steps_per_s']:.0f}" for r in measured)
        rows.append(row)
    table = pd.DataFrame(rows)
    table["ratio_vs_a2c"] = table["steps_per_s"] / table["steps_per_s"].iloc[0]

    def against_bound(config: dict, variant: str) -> dict:
        """An A2C row's serial bound and efficiency, against the network alone of its own precision."""
        measured = [r["steps_per_s"] for r in runs[_label(config, total_envs)]]
        bounds, efficiencies = paired_efficiency(measured, env_rates, net_rates[variant])
        return {"env_alone": statistics.median(env_rates), "net_alone": statistics.median(net_rates[variant]),
                "bound": statistics.median(bounds), "efficiency": statistics.median(efficiencies),
                "runs_efficiency": " ".join(f"{e:.3f}" for e in efficiencies)}

    extra = {_label(CONFIGS[0], total_envs): {
        **against_bound(CONFIGS[0], "galasim"),
        **{f"net_alone_{v}": statistics.median(net_rates[v]) for v in NETWORK_VARIANTS[1:]}}}
    if pixels:
        extra[_label(PIXEL_CONFIGS[0], total_envs)] = against_bound(PIXEL_CONFIGS[0], "bf16_mixed")
    table = table.join(pd.DataFrame.from_dict(extra, orient="index"), on="config")
    sb3 = []
    for threads, measured in sb3_runs.items():
        rate = statistics.median(measured)
        sb3.append({"config": f"SB3 A2C 1x{total_envs}" + (", 2 threads" if threads == 2 else ""),
                    "steps_per_s": rate, "frames_per_s": rate * (4 if pixels else 1),
                    "ratio_vs_a2c": rate / table["steps_per_s"].iloc[0],
                    "runs_steps_per_s": " ".join(f"{r:.0f}" for r in measured)})
    table = pd.concat([table, pd.DataFrame(sb3)], ignore_index=True)
    table["ratio_vs_sb3"] = table["steps_per_s"] / sb3[0]["steps_per_s"]  # SB3 with one thread
    return table
