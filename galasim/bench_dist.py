"""``galasim bench dist``: ``--mode dist`` against ``--mode async`` on one machine, and gloo's cost.

Two measurements, in one invocation:

* **Exchange time.** Two ranks on 127.0.0.1 pass a parameter vector back and forth through
  :class:`~galasim.gossip.dist.DistTransport` (gloo), as learners do: write into the peer's slot,
  the peer polls ``fresh``, ``accumulate``s and writes back. One exchange is half a round trip:
  header, payload and acknowledgement of one message. Default size: the Nature CNN's parameters
  on Pong (1.7 M float32).
* **Training rate.** The same GALA-A2C run (learners, simulators, frames, seed) once with
  ``--mode async`` (shared memory, one process per learner) and once with ``--mode dist`` (one
  rank per learner, gloo on loopback, each rank started as its own process, as torchrun would).
  The rate is the steady state summed over learners from their own ``learner{r}_train.csv``
  rows (first to last row: start-up and rendezvous excluded), the same reading for both modes.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

NATURE_CNN_PONG_PARAMS = 1_687_719  # make_model((4, 84, 84), 6, seed): the message of a Pong learner


def _exchange_rank(rank: int, port: int, dim: int, rounds: int, queue) -> None:
    import datetime

    import torch
    import torch.distributed as dist

    from galasim.gossip.dist import DistTransport

    torch.set_num_threads(1)
    store = dist.TCPStore("127.0.0.1", port, 2, is_master=False, timeout=datetime.timedelta(seconds=60))
    t = DistTransport([(0, 1), (1, 0)], rank, dim, store, {0: 1, 1: 1}, timeout=60)
    out, inn = t.out_edges(rank)[0], t.in_edges(rank)[0]
    params, into = torch.randn(dim), torch.zeros(dim)

    def receive() -> None:
        while not t.fresh(inn):
            pass
        t.accumulate(inn, into)

    def send() -> None:
        while not t.free(out):  # the previous message's acknowledgement
            pass
        t.write(out, params)

    times = []
    for _ in range(rounds + 1):  # the first round connects the pair: not timed
        start = time.perf_counter()
        if rank == 0:
            send()
            receive()
        else:
            receive()
            send()
        times.append(time.perf_counter() - start)
    queue.put((rank, times[1:]))
    time.sleep(1.0)  # let the last acknowledgement leave before the pair closes
    queue.close()
    queue.join_thread()
    # Skip interpreter shutdown: gloo's threads still wait on the posted receives, and tearing them
    # down at exit aborts the process ("terminate called without an active exception").
    os._exit(0)


def exchange_seconds(dim: int = NATURE_CNN_PONG_PARAMS, rounds: int = 20) -> list[float]:
    """Seconds per exchange (half a round trip) of a ``dim``-float32 message over gloo on loopback."""
    from galasim.rl.dist_train import free_port, host_store

    port = free_port()
    store = host_store(port, 2)
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_exchange_rank, args=(r, port, dim, rounds, queue)) for r in range(2)]
    for p in procs:
        p.start()
    try:
        times = dict(queue.get(timeout=600) for _ in procs)
    finally:
        for p in procs:
            p.join(30)
            if p.is_alive():
                p.kill()
        del store
    return [rt / 2 for rt in times[0]]  # rank 0 timed whole round trips


def _steady_rate(run: Path, learners: int) -> float:
    """Frames/s summed over learners, each from its first to its last train row (a run too short
    for two rows, as in quick mode, counts from the learner's start)."""
    total = 0.0
    for rank in range(learners):
        rows = pd.read_csv(run / "logs" / f"learner{rank}_train.csv")
        a, b = rows.iloc[0], rows.iloc[-1]
        if len(rows) < 2:
            total += b["frames"] / b["time"]
        else:
            total += (b["frames"] - a["frames"]) / (b["time"] - a["time"])
    return total


def _train_args(env: str, learners: int, envs_per: int, frames: int, seed: int, out: Path) -> list[str]:
    return ["--env", env, "--agents", str(learners), "--envs-per-agent", str(envs_per), "--frames",
            str(frames), "--sync-freq", "inf", "--seed", str(seed), "--out", str(out), "--no-progress",
            "--no-tensorboard", "--device", "cpu", "--checkpoint-every", str(10 * frames)]


def _async_rate(env: str, learners: int, envs_per: int, frames: int, seed: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        cmd = [sys.executable, "-m", "galasim", "train", "--mode", "async",
               *_train_args(env, learners, envs_per, frames, seed, out)]
        subprocess.run(cmd, check=True, capture_output=True, timeout=3600)
        return _steady_rate(out, learners)


def _dist_rate(env: str, learners: int, envs_per: int, frames: int, seed: int) -> float:
    from galasim.rl.dist_train import free_port, host_store, spawn_rank

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        port = free_port()
        store = host_store(port, learners)
        args = _train_args(env, learners, envs_per, frames, seed, out)
        procs = [spawn_rank(r, learners, port, args, Path(tmp) / f"rank{r}.log") for r in range(learners)]
        try:
            codes = [p.wait(timeout=3600) for p in procs]
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
            del store
        if any(codes):
            log = (Path(tmp) / f"rank{codes.index(next(c for c in codes if c))}.log").read_text()[-2000:]
            raise RuntimeError(f"a dist rank failed (exit codes {codes}):\n{log}")
        return _steady_rate(out, learners)


def bench_dist(quick: bool = False, repeats: int = 3, env: str = "PongNoFrameskip-v4", learners: int = 2,
               envs_per_agent: int = 8, frames: int | None = None) -> pd.DataFrame:
    """Frames/s of ``--mode dist`` against ``--mode async``, and gloo's exchange time, in one run.

    Parameters
    ----------
    quick : bool
        CartPole-v1, tiny budgets and a small message (smoke test; figures meaningless).
    repeats : int
        Runs per mode (interleaved); medians are reported.
    env : str
        Environment id.
    learners, envs_per_agent : int
        The GALA-A2C run (``--sync-freq inf``), the same in both modes.
    frames : int, optional
        Frames per run (default 60,000; 4,000 with ``quick``).

    Returns
    -------
    pandas.DataFrame
        Rows ``async`` and ``dist`` (``frames_per_s`` median, ``runs``, ``ratio_vs_async``) and
        ``gloo exchange`` (``seconds`` median, ``runs``, ``megabytes`` of the message).
    """
    if quick:
        env, frames, dim, rounds = "CartPole-v1", frames or 4000, 1000, 3
    else:
        frames, dim, rounds = frames or 60_000, NATURE_CNN_PONG_PARAMS, 20
    rates: dict[str, list[float]] = {"async": [], "dist": []}
    for seed in range(repeats):  # interleaved, so a change in the machine's load hits both modes
        rates["async"].append(_async_rate(env, learners, envs_per_agent, frames, seed))
        rates["dist"].append(_dist_rate(env, learners, envs_per_agent, frames, seed))
    exchange = exchange_seconds(dim, rounds)
    table = pd.DataFrame([
        {"measure": f"{mode} GALA {learners}x{envs_per_agent}", "frames_per_s": statistics.median(r),
         "runs": " ".join(f"{x:.0f}" for x in r)} for mode, r in rates.items()
    ])
    table["ratio_vs_async"] = table["frames_per_s"] / table["frames_per_s"].iloc[0]
    gloo = {"measure": "gloo exchange (loopback)", "seconds": statistics.median(exchange),
            "runs": f"{len(exchange)} exchanges, min {min(exchange):.4f} s, max {max(exchange):.4f} s",
            "megabytes": 4 * dim / 1e6}
    return pd.concat([table, pd.DataFrame([gloo])], ignore_index=True)
