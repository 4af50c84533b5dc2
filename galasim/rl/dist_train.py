"""``--mode dist``: one learner per torch.distributed rank, on one machine or several.

Launch with ``torchrun --nproc-per-node N -m galasim train --mode dist ...`` (or start each rank
yourself with ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT`` set). The address
defaults to 127.0.0.1: nothing listens beyond loopback unless the user names an address.

* ``--algo gala``: the same :class:`~galasim.gossip.buffer.GossipBuffer` as ``--mode async``, over
  :class:`~galasim.gossip.dist.DistTransport`, wrapped in
  :class:`~galasim.gossip.failures.RepairedTransport`: a learner silent for ``--failure-timeout``
  seconds is removed with the repair rule and the others go on; a restarted rank rejoins with its
  lowest-numbered live in-neighbour's parameters (and its own checkpoint's optimizer and counters).
* ``--algo a2c``: the synchronous baseline over the same ranks, ``all_reduce`` of gradients; a
  failure stops it (synchronous all-reduce has no way around a dead member).

The store: under torchrun its agent hosts it (``TORCHELASTIC_USE_AGENT_STORE``); with
``GALASIM_EXTERNAL_STORE=1`` someone else does (tests, ``examples/fault_trials.py``); otherwise
rank 0 hosts it, and then rank 0's death ends the run. Note that torchrun itself stops every
worker when one fails (and restarts them all with ``--max-restarts``, which resume from their
checkpoints): to keep the others running, start the ranks as separate processes.

Ctrl-C on torchrun (which passes the signal on to its workers) or ``kill`` of any rank stops the run: the
ranks agree on it (GALA: a flag in the store; A2C: a flag all-reduced after every update, so every
rank stops after the same update), each finishes its update and writes a checkpoint, and exits with
130; the same launch with ``--resume`` continues it.

Each rank writes ``logs/learner{r}_*.csv``, ``checkpoints/learner{r}.pt`` and
``summaries/rank{r}.json``; the lowest live, unfinished rank writes ``logs/network.csv`` (consensus
distance of the live ranks' published parameters, every ``log_every`` seconds) and every rank, on
exit, merges the parts into ``summary.json``.
"""
from __future__ import annotations

import datetime
import fcntl
import json
import os
import time
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from galasim.atomic import atomic_write_text
from galasim.rl.config import TrainConfig
from galasim.rl.monitor import NetworkLog, async_bounds, consensus, rows_up_to

STORE_TIMEOUT = 120.0
FRAMES_KEY = "galasim/frames/{}"  # each rank's frames; GALA ranks stop once they sum to the budget
STOP_KEY = "galasim/stop"  # GALA: > 0 once a rank was asked to stop (Ctrl-C, kill)
CLOCK_KEY = "galasim/clock"  # seconds the network log had reached when this launch began
MONITORS_KEY = "galasim/monitors"  # how many ranks have opened the network log in this launch


class RunStopped(KeyboardInterrupt):
    """This rank stopped on request, after its update and with a checkpoint."""


def dist_env() -> dict[str, Any]:
    """Rank, world size and rendezvous address from the environment (torchrun's variables)."""
    missing = [k for k in ("RANK", "WORLD_SIZE", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise ValueError(f"--mode dist needs {', '.join(missing)} in the environment: launch with "
                         "torchrun --nproc-per-node N -m galasim train --mode dist ...")
    env = {"rank": int(os.environ["RANK"]), "world": int(os.environ["WORLD_SIZE"]),
           "addr": os.environ.get("MASTER_ADDR", "127.0.0.1"), "port": int(os.environ["MASTER_PORT"])}
    env["external_store"] = (os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
                             or os.environ.get("GALASIM_EXTERNAL_STORE") == "1")
    # Under torchrun --max-restarts every restart of the whole group gets fresh keys.
    env["prefix"] = f"galasim-run/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}/"
    if not 0 <= env["rank"] < env["world"]:
        raise ValueError(f"RANK must be in [0, WORLD_SIZE={env['world']}), got {env['rank']}")
    return env


def connect_store(env: dict[str, Any]):
    import torch.distributed as dist

    store = dist.TCPStore(env["addr"], env["port"], env["world"],
                          is_master=env["rank"] == 0 and not env["external_store"],
                          wait_for_workers=False, timeout=datetime.timedelta(seconds=STORE_TIMEOUT))
    return dist.PrefixStore(env["prefix"], store)


def train_dist(cfg: TrainConfig, resume: bool) -> tuple[dict[str, Any], np.ndarray]:
    """This rank's part of a ``--mode dist`` run; returns the merged summary and own parameters."""
    env = dist_env()
    run = Path(cfg.out)
    (run / "summaries").mkdir(parents=True, exist_ok=True)
    store = connect_store(env)
    try:
        part, params = _rank_loop(cfg, env, store)
    except KeyboardInterrupt:
        raise  # stopped or interrupted, not failed: no part (the resumed run writes it)
    except BaseException as exc:
        part = {"rank": env["rank"], "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc()}
        with _summaries_lock(run):
            _write_part(run, env["rank"], part)
        raise
    # One rank at a time writes its part and merges: two ranks finishing together would otherwise each
    # merge without the other's part, and the later writer's summary would miss a finished rank.
    with _summaries_lock(run):
        _write_part(run, env["rank"], part)
        return merge_summaries(run, cfg), params


@contextmanager
def _summaries_lock(run: Path):
    """Exclusive lock on ``summaries/.lock`` (released by the OS if this rank dies holding it)."""
    fd = os.open(run / "summaries" / ".lock", os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _write_part(run: Path, rank: int, part: dict[str, Any]) -> None:
    atomic_write_text(run / "summaries" / f"rank{rank}.json", json.dumps(part, indent=2, default=str) + "\n")


def _rank_loop(cfg: TrainConfig, env: dict[str, Any], store) -> tuple[dict[str, Any], np.ndarray]:
    from galasim._interrupt import StopRequest
    from galasim.gossip.buffer import GossipBuffer
    from galasim.gossip.dist import DistTransport
    from galasim.gossip.failures import Membership, RepairedTransport
    from galasim.rl import checkpoint
    from galasim.rl.learner import (TB_KEYS, configure_process, drain_episodes, resolve_device, restore_learner,
                                    train_row)
    from galasim.rl.model import warn_if_emulated

    rank, world = env["rank"], env["world"]
    stop = StopRequest()  # until the loop starts, Ctrl-C or kill interrupts at once
    configure_process(cfg.threads)
    device = resolve_device(cfg.device)
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)) % torch.cuda.device_count())
    if rank == 0:  # once per run, as --mode async and sim warn in train._plan
        warn_if_emulated(cfg.precision, device)
    out = Path(cfg.out)
    learner, logger, state = restore_learner(cfg, rank, device, cfg.envs_per_agent)
    store.set(FRAMES_KEY.format(rank), str(learner.frames))  # before this rank counts as started

    membership = Membership(store, rank, world, cfg.failure_timeout)
    inc = membership.wait_for_all(STORE_TIMEOUT)
    gossip = transport = reduce = None
    if cfg.algo == "gala":
        graph = cfg.graph()
        alive = [r for r in range(world) if r not in membership.dead and r not in membership.done]
        peers = None if not membership.restarted else alive
        inner = DistTransport(list(graph.edges), rank, learner.params.numel(), store, inc,
                              timeout=STORE_TIMEOUT, peers=peers)
        transport = RepairedTransport(inner, list(graph.edges), membership)
        transport.bind(learner.params)
        gossip = GossipBuffer(rank, transport, cfg.sync_freq, resend=cfg.resend, timeout=cfg.gossip_timeout)
        checkpoint.restore_gossip_stats(gossip.stats, state)
        if membership.restarted:
            source = transport.rejoin(learner.params, timeout=STORE_TIMEOUT)
            transport.write_new_edges()
            print(f"rank {rank}: rejoined (incarnation {membership.incarnation}) with the parameters of "
                  f"{'rank ' + str(source) if source is not None else 'its own checkpoint (no live in-neighbour)'}",
                  flush=True)
    else:
        reduce = _all_reduce_grads(store, rank, world)

    share = cfg.frames // world  # A2C's ranks stop at it
    checkpoint_every = max(cfg.checkpoint_every // world, learner.frames_per_update)
    next_checkpoint = (learner.frames // checkpoint_every + 1) * checkpoint_every
    launched = last_log = next_publish = time.perf_counter()
    frames_at_log = learner.frames
    start = launched - (state.get("seconds", 0.0) if state else 0.0)  # the logs' time goes on at a resume
    stats = None
    # GALA's ranks stop together, once their frames (in the store) sum to the budget, as in --mode
    # async: a rank whose peers had finished would train on alone. A rejoined rank counts from its
    # checkpoint, a dead one keeps its last count. A2C's ranks all-reduce every update, so each
    # makes the same number of updates: its share.
    counters = [FRAMES_KEY.format(r) for r in range(world)]
    total = sum(int(v) for v in store.multi_get(counters))
    monitor = _NetworkMonitor(out, store, rank, learner.params.numel(), start_frames=total)
    store.add(STOP_KEY, 0)  # creates the flag, so that every read below finds it
    stopped = announced = False
    solved = learner.solved() if reduce is None else False

    def budget_left() -> bool:
        return learner.frames < share if reduce is not None else total < cfg.frames

    stop.arm()
    while budget_left() and not (solved or stopped):
        stats = learner.iterate(total / cfg.frames, reduce_grads=reduce)
        if reduce is not None:
            total = learner.frames * world  # every rank makes the same updates
            # Every rank must leave after the same update, or the others wait in all_reduce forever.
            stopped, solved = _any_rank(stop.requested, learner.solved())
        else:
            solved = learner.solved()
            store.set(FRAMES_KEY.format(rank), str(learner.frames))
            if stop.requested and not announced:
                store.add(STOP_KEY, 1)
                announced = True
            *frames, flag = store.multi_get(counters + [STOP_KEY])
            total, stopped = sum(int(v) for v in frames), int(flag) > 0
            tick = time.perf_counter()
            transport.poll()                 # heartbeat; repair around peers detected dead
            gossip.step(learner.params)      # GALA: send, then receive (may block, never forever)
            learner.timing["gossip"] += time.perf_counter() - tick
        now = time.perf_counter()
        drain_episodes(learner, logger, total, now - start)
        if now >= next_publish:  # the epsilon-ball monitor reads these (raw float32 and JSON, no pickle)
            store.set(f"params/{rank}", learner.params.detach().float().cpu().numpy().tobytes())
            store.set(f"stats/{rank}", json.dumps({"frames": learner.frames, "L": learner.L,
                                                   "max_staleness": gossip.stats.max_staleness if gossip else 0}))
            monitor.publish(membership)
            next_publish = now + cfg.log_every
        if now - last_log >= cfg.log_every:
            fps = (learner.frames - frames_at_log) / (now - last_log)
            logger.train(train_row(learner, stats, gossip.stats if gossip else None, total, now - start, fps),
                         learner.frames, TB_KEYS)
            last_log, frames_at_log = now, learner.frames
        if learner.frames >= next_checkpoint:
            checkpoint.save_learner(out, rank, learner, logger, gossip, now - start)
            next_checkpoint += checkpoint_every
    now = time.perf_counter()
    wall = now - launched  # this launch's, for its frame rate
    store.set(f"params/{rank}", learner.params.detach().float().cpu().numpy().tobytes())
    if stats is not None and learner.frames > frames_at_log:  # the last update, unless just logged
        logger.train(train_row(learner, stats, gossip.stats if gossip else None, total, now - start,
                               (learner.frames - frames_at_log) / max(now - last_log, 1e-9)),
                     learner.frames, TB_KEYS)
    checkpoint.save_learner(out, rank, learner, logger, gossip, now - start)
    logger.close()
    monitor.close()
    if transport is not None:
        transport.leave(rank)
        transport.write_new_edges = lambda: None
    if stopped and not solved and budget_left():
        learner.close()
        raise RunStopped(f"stopped at {learner.frames:,} frames, with a checkpoint; continue the run with "
                         "the same launch and --resume")
    part = {
        "rank": rank, "incarnation": membership.incarnation, "frames": learner.frames,
        "wall_seconds": wall, "fps": (learner.frames - (state["learner"]["frames"] if state else 0)) / wall,
        "L": learner.L, "max_staleness": gossip.stats.max_staleness if gossip else 0,
        "messages_sent": gossip.stats.messages_sent if gossip else 0, "mixes": gossip.stats.mixes if gossip else 0,
        "events": membership.events, "end_time": membership.now(),
        "network": _network_snapshot(store, _live(membership), learner.params.numel()),
        "empirical": monitor.empirical, "empirical_samples": monitor.samples,
    }
    learner.close()
    return part, learner.params.detach().float().cpu().numpy()


def _live(membership) -> list[int]:
    """The ranks this rank believes alive (itself included); the finished ones too."""
    return [r for r in range(membership.world) if r not in membership.dead]


class _NetworkMonitor:
    """``logs/network.csv`` of a dist run: the epsilon-ball over time, as ``--mode async`` logs it.

    The lowest live, unfinished rank writes a row each time it publishes: consensus distance and
    diameter of the latest published parameters of the live ranks that have not finished, their
    total frames, max L and staleness. When it dies or finishes, the next one takes over
    (appending to its own run folder).
    """

    def __init__(self, run: Path, store, rank: int, dim: int, start_frames: int):
        self.run, self.store, self.rank, self.dim, self.start_frames = run, store, rank, dim, start_frames
        self.log: NetworkLog | None = None

    @property
    def empirical(self) -> float:
        return self.log.empirical if self.log is not None else 0.0

    @property
    def samples(self) -> int:
        return self.log.samples if self.log is not None else 0

    def publish(self, membership) -> None:
        running = [r for r in _live(membership) if r not in membership.done]
        if running and running[0] != self.rank:
            return
        stats = [json.loads(self.store.get(f"stats/{r}")) for r in _live(membership)
                 if self.store.check([f"stats/{r}"])]
        total = sum(s["frames"] for s in stats)
        if self.log is None:
            # The launch's first monitor cuts the rows written after the checkpoints (whose training
            # is redone) and sets the time all monitors of the launch go on from; a rank that takes
            # over later in the launch appends to the rows of this launch.
            first = int(self.store.add(MONITORS_KEY, 1)) == 1
            clock = rows_up_to(self.run, self.start_frames)[1] if first else 0.0
            clock = float(self.store.compare_set(CLOCK_KEY, "", repr(clock)))
            self.log = NetworkLog(self.run, self.start_frames if first else None, clock)
        # Ranks that finished keep their last parameters while the others go on: left out.
        ranks, published = _published(self.store, running, self.dim)
        self.log.write(membership.now(), total, ranks, published, running=len(running),
                       L=max(s["L"] for s in stats), max_staleness=max(s["max_staleness"] for s in stats))

    def close(self) -> None:
        if self.log is not None:
            self.log.close()


def _published(store, ranks: list[int], dim: int) -> tuple[list[int], torch.Tensor]:
    """Those of ``ranks`` that have published parameters, and their latest ones (a row each)."""
    rows = {}
    for r in ranks:
        if store.check([f"params/{r}"]):
            data = store.get(f"params/{r}")
            if len(data) == 4 * dim:
                rows[r] = np.frombuffer(data, dtype=np.float32)
    return list(rows), torch.tensor(np.stack(list(rows.values()))) if rows else torch.zeros(0, dim)


def _network_snapshot(store, ranks: list[int], dim: int) -> dict[str, Any]:
    """Consensus distance and diameter of the latest published parameters of ``ranks``."""
    found, published = _published(store, ranks, dim)
    distance, diameter = consensus(published) if found else (0.0, 0.0)
    return {"distance": distance, "diameter": diameter, "ranks": len(found)}


def _all_reduce_grads(store, rank: int, world: int):
    """The A2C baseline's synchronous step: average the flat gradient over all ranks.

    gloo, through host memory also for ranks on a GPU, as the gossip transport: NCCL refuses two
    ranks on one GPU."""
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo", store=dist.PrefixStore("a2c/", store), rank=rank, world_size=world)

    def reduce(grad: torch.Tensor) -> None:  # the learner's flat gradient (FlatRMSprop.flat_grad)
        host = grad.cpu()  # on CPU, the gradient itself: reduced in place
        dist.all_reduce(host)
        if host is not grad:
            grad.copy_(host)
        grad.div_(world)
    return reduce


def _any_rank(*flags: bool) -> list[bool]:
    """For each flag, whether it is set on any rank (a collective: every rank must call it)."""
    import torch.distributed as dist

    t = torch.tensor([int(f) for f in flags], dtype=torch.int32)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [bool(v) for v in t.tolist()]


def merge_summaries(run: Path, cfg: TrainConfig) -> dict[str, Any]:
    """Merge ``summaries/rank*.json`` into one summary (every rank calls it, under the summaries lock)."""
    from galasim.gossip.failures import fault_log, interruptions
    from galasim.rl.train import run_summary

    parts = []
    for f in sorted((run / "summaries").glob("rank*.json")):
        try:
            parts.append(json.loads(f.read_text()))
        except (OSError, ValueError):
            continue
    done = [p for p in parts if "error" not in p]
    events = sorted((e for p in done for e in p.get("events", [])), key=lambda e: e["time"])
    end = max((p.get("end_time", 0.0) for p in done), default=0.0)
    lines, down = interruptions(events, end)
    frames = sum(p["frames"] for p in done)
    wall = max((p["wall_seconds"] for p in done), default=0.0)
    summary = run_summary(cfg, run, wall, frames, frames, logs=cfg.agents)  # every rank's episodes
    network = max((p["network"] for p in done), key=lambda n: n["ranks"], default={"distance": 0.0})
    log = fault_log(events)  # several ranks observe the same death: the first report of each
    summary.update({
        "learners": max(len(parts), 1), "ranks_finished": sorted(p["rank"] for p in done),
        "ranks_failed": {p["rank"]: p["error"] for p in parts if "error" in p},
        "fps": sum(p["fps"] for p in done),
        # Unless some monitor saw two ranks running, the spread was never measured: None, not 0.
        "empirical": (max(p.get("empirical", 0.0) for p in done)
                      if any(p.get("empirical_samples", 0) for p in done) else None),
        "final_distance": network.get("distance", 0.0),  # early finishers included
        "L": max((p["L"] for p in done), default=0.0),
        "max_staleness": max((p["max_staleness"] for p in done), default=0),
        "faults_log": log, "assumptions_interrupted": lines, "interrupted_time": down,
    })
    if cfg.algo == "gala":
        summary.update(async_bounds(cfg.graph(), cfg.lr, summary["L"], summary["max_staleness"], summary["empirical"],
                                    interrupted=bool(lines)))
    else:  # the snapshots are not simultaneous, but the replicas are equal by construction
        summary.update({
            "empirical": 0.0, "final_distance": 0.0, "epsilon": 0.0, "bound_holds": True,
            "bound_note": ("synchronous A2C: every rank applies the same all-reduced gradient to the same "
                           "initial parameters, so the replicas are identical at every step"),
        })
    atomic_write_text(run / "summary.json", json.dumps(summary, indent=2, default=str) + "\n")
    return summary


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (for tests and local launches)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def host_store(port: int, world: int):
    """Host the run's TCPStore on 127.0.0.1 in this process, so that any rank may die."""
    import torch.distributed as dist

    return dist.TCPStore("127.0.0.1", port, world, is_master=True, wait_for_workers=False,
                         timeout=datetime.timedelta(seconds=STORE_TIMEOUT))


def spawn_rank(rank: int, world: int, port: int, argv: list[str], log: str | Path | None = None,
               extra_env: dict[str, str] | None = None):
    """Start ``python -m galasim train --mode dist ARGV`` as rank ``rank`` (a separate process, so
    that killing it leaves the others running, unlike under torchrun). Returns the ``Popen``."""
    import subprocess
    import sys

    env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
               MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), GALASIM_EXTERNAL_STORE="1",
               OMP_NUM_THREADS="1", **(extra_env or {}))
    out = open(log, "ab") if log is not None else subprocess.DEVNULL
    return subprocess.Popen([sys.executable, "-m", "galasim", "train", "--mode", "dist", *argv],
                            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
