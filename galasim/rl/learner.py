"""One GALA-A2C actor-learner: rollout, A2C update, gossip. Used by every training mode.

:class:`Learner` holds a learner's simulators, network, optimizer and rollout storage;
:meth:`Learner.iterate` is one local update ``x <- x + delta`` (collect ``n_steps`` x ``num_envs``
transitions, one RMSprop step on the A2C loss). :func:`run_learner` is the asynchronous learner
process: the loop reads top to bottom, CleanRL style::

    seed -> device -> envs -> model -> loop { rollout; A2C step; gossip.step(params); log; checkpoint }
"""
from __future__ import annotations

import contextlib
import signal
import time
import traceback
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from galasim.rl import seqlock
from galasim.rl.allocator import keep_freed_blocks
from galasim.rl.buffer import RolloutBuffer
from galasim.rl.config import TrainConfig
from galasim.rl.envs import VecEnv
from galasim.rl.model import make_model
from galasim.rl.optim import FlatRMSprop
from galasim.sim.rng import stream_key

# Stream ids for galasim.sim.rng.stream_key; the simulator uses 1-5.
ENV_STREAM, ACTION_STREAM = 101, 102

EPISODE_COLUMNS = ["learner", "frames", "total_frames", "time", "return", "length"]
TRAIN_COLUMNS = [
    "learner", "update", "frames", "total_frames", "time", "fps", "lr", "value_loss", "policy_loss",
    "entropy", "grad_norm", "update_norm", "L", "staleness", "max_staleness", "mixes",
    "messages_sent", "messages_skipped", "wait_seconds", "t_env", "t_act", "t_update", "t_gossip",
]
TB_KEYS = ("fps", "value_loss", "policy_loss", "entropy", "grad_norm", "update_norm", "L",
           "gossip/staleness", "gossip/max_staleness")


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but torch sees no CUDA device; use --device cpu or auto")
    return torch.device(device)


def configure_process(threads: int) -> None:
    """A learner process's settings: ``threads`` torch threads (1 by default: two collapse ~10x when
    another process holds a core) and a malloc that reuses large blocks (:mod:`galasim.rl.allocator`)."""
    torch.set_num_threads(threads)
    keep_freed_blocks()


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """``threads`` torch threads inside the block, and the caller's number again after it.

    Examples
    --------
    >>> before = torch.get_num_threads()
    >>> with torch_threads(1):
    ...     torch.get_num_threads()
    1
    >>> torch.get_num_threads() == before
    True
    """
    caller = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(caller)


# --acting-graph auto keeps the graph from this many simulators per learner up (measured on CPU:
# docs/benchmarks.md, "The acting graph"); below, the per-step backward passes cost more than a
# second forward over the rollout.
KEEP_GRAPH_MIN_ENVS = 8


def keeps_acting_graph(choice: str, num_envs: int) -> bool:
    """Whether the update backpropagates through the acting forwards (``TrainConfig.acting_graph``).

    Examples
    --------
    >>> keeps_acting_graph("auto", 16), keeps_acting_graph("auto", 2), keeps_acting_graph("keep", 2)
    (True, False, True)
    """
    return num_envs >= KEEP_GRAPH_MIN_ENVS if choice == "auto" else choice == "keep"


def env_seed(seed: int, learner: int) -> int:
    """Seed of learner ``learner``'s first simulator (a hash: learner 1 of seed 1 != learner 0 of seed 2)."""
    return stream_key(seed, ENV_STREAM, learner) % (2**31 - 1024)


@dataclass
class UpdateStats:
    value_loss: float
    policy_loss: float
    entropy: float
    grad_norm: float
    update_norm: float


class Learner:
    """A learner's simulators, network (flat parameters), RMSprop optimizer and rollout storage.

    Parameters
    ----------
    cfg : TrainConfig
    rank : int
        Learner index (seeds its simulators and action sampling).
    device : torch.device
    num_envs : int
        Simulators of this learner.
    """

    def __init__(self, cfg: TrainConfig, rank: int, device: torch.device, num_envs: int):
        self.cfg, self.rank, self.device = cfg, rank, device
        self.envs = VecEnv(cfg.env, num_envs, env_seed(cfg.seed, rank), cfg.sticky_actions,
                           max_episode_frames=cfg.max_episode_frames)
        self.clip = cfg.clip_rewards and self.envs.spec.kind == "atari"
        # Identical initialisation: the network depends on the run seed only, never on the rank.
        self.model, self.params = make_model(self.envs.observation_space.shape, self.envs.action_space.n,
                                             cfg.seed, cfg.hidden, device, cfg.precision)
        # RMSprop (PyTorch's, or TensorFlow's with --rmsprop tf) stepped on flat vectors (galasim/rl/optim.py)
        self.optimizer = FlatRMSprop(self.model.parameters(), self.params, lr=cfg.lr, eps=cfg.rms_eps,
                                     alpha=cfg.rms_alpha, tf_like=cfg.rmsprop == "tf")
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(stream_key(cfg.seed, ACTION_STREAM, rank) % 2**63)
        self.obs = torch.tensor(self.envs.reset(), device=device)
        self.keep_graph = keeps_acting_graph(cfg.acting_graph, num_envs)
        self.storage = RolloutBuffer(cfg.n_steps, num_envs, device, self.keep_graph, tuple(self.obs.shape[1:]),
                                     self.obs.dtype)
        self.before = torch.empty_like(self.params)
        self.frames_per_update = cfg.n_steps * num_envs * self.envs.frameskip
        self.updates = 0
        self.frames = 0
        self.max_update_norm = 0.0
        self.episodes: list[tuple[float, int, int]] = []  # (true return, length, frames) since last drain
        self.recent: deque[float] = deque(maxlen=cfg.stop_window)
        self.timing = {"env": 0.0, "act": 0.0, "update": 0.0, "gossip": 0.0}

    # -- one local update ----------------------------------------------------------------------------
    def iterate(self, progress: float = 0.0, reduce_grads: Any = None) -> UpdateStats:
        """Collect a rollout and take one A2C step.

        ``progress``: the fraction of the frame budget already spent (the run's, over all learners,
        or this learner's share: see ``TrainConfig.lr_decay``); with ``lr_decay`` the step's
        learning rate is ``lr * (1 - progress)``.

        ``reduce_grads(flat_grad)``, if given, runs between backward and clipping (``--mode dist --algo
        a2c``: the all-reduce of gradients over the ranks)."""
        cfg, storage = self.cfg, self.storage
        storage.reset()
        for t in range(cfg.n_steps):
            tick = time.perf_counter()
            with torch.set_grad_enabled(self.keep_graph):  # kept: no second forward in the update
                logits, value = self.model(self.obs)
            dist = torch.distributions.Categorical(logits=logits)
            action = torch.multinomial(dist.probs.detach(), 1, generator=self.generator).squeeze(1)
            tock = time.perf_counter()
            obs, reward, done, episodes = self.envs.step(action.cpu().numpy())
            self.timing["env"] += time.perf_counter() - tock
            self.timing["act"] += tock - tick
            learn_reward = np.sign(reward) if self.clip else reward
            storage.add(t, self.obs, action, dist, value,
                        torch.as_tensor(learn_reward, dtype=torch.float32, device=self.device),
                        torch.as_tensor(done, dtype=torch.float32, device=self.device))
            # A copy: vector envs may reuse their observation buffer, and autograd saved this one.
            self.obs = torch.tensor(obs, device=self.device)
            step_frames = self.frames + (t + 1) * self.envs.num_envs * self.envs.frameskip
            for ret, length in episodes:
                self.episodes.append((ret, length, step_frames))
                self.recent.append(ret)

        tick = time.perf_counter()
        with torch.no_grad():
            next_value = self.model(self.obs)[1]
        batch = storage.samples(next_value, cfg.gamma, cfg.gae, cfg.gae_lambda, self.model)
        value_loss = (batch.returns - batch.values).pow(2).mean()
        policy_loss = -(batch.advantages * batch.log_probs).mean()  # advantages carry no gradient
        entropy = batch.entropy.mean()
        loss = policy_loss + cfg.vf_coef * value_loss - cfg.ent_coef * entropy

        if cfg.lr_decay:
            for group in self.optimizer.param_groups:
                group["lr"] = cfg.lr * max(1.0 - progress, 0.0)
        self.optimizer.zero_grad(set_to_none=False)
        loss.backward()
        if reduce_grads is not None:
            reduce_grads(self.optimizer.flat_grad)
        grad_norm = nn.utils.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm)
        self.before.copy_(self.params)
        self.optimizer.step()
        update_norm = float(torch.dist(self.params, self.before))
        self.timing["update"] += time.perf_counter() - tick

        self.updates += 1
        self.frames += self.frames_per_update
        self.max_update_norm = max(self.max_update_norm, update_norm)
        return UpdateStats(value_loss.item(), policy_loss.item(), entropy.item(), float(grad_norm),
                           update_norm)

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    @property
    def L(self) -> float:
        """The measured update bound so far: max ||delta|| / lr (lr at its initial value)."""
        return self.max_update_norm / self.cfg.lr

    def solved(self) -> bool:
        """Whether the mean true return of the last ``stop_window`` episodes reached ``stop_return``."""
        return (self.cfg.stop_return is not None and len(self.recent) == self.recent.maxlen
                and float(np.mean(self.recent)) >= self.cfg.stop_return)

    # -- checkpoints ------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "params": self.params.detach().cpu().clone(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "updates": self.updates,
            "frames": self.frames,
            "max_update_norm": self.max_update_norm,
            "recent": list(self.recent),
            "timing": dict(self.timing),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.params.copy_(state["params"].to(self.device))
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.updates = int(state["updates"])
        self.frames = int(state["frames"])
        self.max_update_norm = float(state["max_update_norm"])
        self.recent.extend(float(r) for r in state["recent"])
        self.timing.update(state.get("timing", {}))  # absent from checkpoints of older versions

    def close(self) -> None:
        self.envs.close()


def train_row(learner: Learner, stats: UpdateStats, gossip_stats: Any, total_frames: int,
              elapsed: float, fps: float) -> dict[str, Any]:
    """One row of ``learner{r}_train.csv``."""
    g = gossip_stats
    return {
        "learner": learner.rank, "update": learner.updates, "frames": learner.frames,
        "total_frames": total_frames, "time": elapsed, "fps": fps, "lr": learner.lr,
        "value_loss": stats.value_loss, "policy_loss": stats.policy_loss, "entropy": stats.entropy,
        "grad_norm": stats.grad_norm, "update_norm": stats.update_norm, "L": learner.L,
        "staleness": g.staleness if g else 0, "max_staleness": g.max_staleness if g else 0,
        "mixes": g.mixes if g else 0, "messages_sent": g.messages_sent if g else 0,
        "messages_skipped": g.messages_skipped if g else 0,
        "wait_seconds": g.wait_seconds if g else 0.0,
        "t_env": learner.timing["env"], "t_act": learner.timing["act"],
        "t_update": learner.timing["update"], "t_gossip": learner.timing["gossip"],
        "gossip/staleness": g.staleness if g else 0, "gossip/max_staleness": g.max_staleness if g else 0,
    }


def drain_episodes(learner: Learner, logger: Any, total_frames: int, elapsed: float) -> None:
    for ret, length, frames in learner.episodes:
        logger.episode({"learner": learner.rank, "frames": frames, "total_frames": total_frames,
                        "time": elapsed, "return": ret, "length": length}, frames)
    learner.episodes.clear()


def run_learner(rank: int, cfg: TrainConfig, transport: Any, shared: dict[str, torch.Tensor],
                errors: Any, store_port: int | None = None) -> None:
    """The asynchronous learner process ``rank`` (``--mode async`` and ``--algo a2c``).

    ``shared`` holds tensors in shared memory: ``frames`` (one counter per learner, read by the
    parent's progress bar and by every learner: they stop once the counters sum to the budget),
    ``published`` and ``version`` (each learner's latest parameters, read by the parent's
    epsilon-ball monitor, and their sequence lock: :mod:`galasim.rl.seqlock`),
    ``done`` (a learner has left its loop) and ``stop`` (set by the parent to end the run).
    ``store_port``: the parent's ``TCPStore`` on 127.0.0.1 (GALA), through which the learners
    agree on who is dead (:class:`galasim.gossip.failures.Membership`, as in ``--mode dist``).

    Ctrl-C reaches the whole process group, and the parent stops the run: a learner ignores SIGINT
    and ends its loop on ``stop`` after its update, with a checkpoint. SIGTERM (``kill``) sets
    ``stop`` itself, so killing a learner or the parent stops the run the same way.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda signum, frame: shared["stop"].fill_(True))
    try:
        _learner_loop(rank, cfg, transport, shared, store_port)
    except BaseException as exc:  # report to the parent as one line, then fail
        errors.put((rank, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__,
                    traceback.format_exc()))
        raise SystemExit(1)
    finally:
        if transport is not None:
            transport.leave(rank)  # peers stop waiting for a learner that is gone


def restore_learner(cfg: TrainConfig, rank: int, device: torch.device, num_envs: int):
    """Learner ``rank``, its logger and its checkpoint state (None on a fresh start).

    On a resume the learner continues from its checkpoint and the logger cuts its CSV files back to
    the rows that checkpoint had seen (to none without a checkpoint), so that no row is duplicated or lost.
    """
    from galasim.rl import checkpoint
    from galasim.rl.logger import Logger

    out = Path(cfg.out)
    learner = Learner(cfg, rank, device, num_envs)
    state = checkpoint.load_learner(out, rank) if checkpoint.exists(out, rank) else None
    if state is not None:
        learner.load_state_dict(state["learner"])
    # Without a checkpoint the learner starts over (frames 0), and so do its logs.
    logger = Logger(out / "logs", f"learner{rank}", EPISODE_COLUMNS, TRAIN_COLUMNS,
                    rows=state["rows"] if state else None, tensorboard=cfg.tensorboard,
                    purge_step=learner.frames)
    return learner, logger, state


def _join_membership(rank: int, cfg: TrainConfig, transport: Any, params: torch.Tensor, port: int):
    """Wrap the shared-memory transport in a :class:`~galasim.gossip.failures.RepairedTransport`
    over the parent's store, as ``--mode dist`` does; a restarted learner rejoins."""
    import datetime

    import torch.distributed as dist

    from galasim.gossip.failures import PREFIX, Membership, RepairedTransport
    from galasim.rl.dist_train import STORE_TIMEOUT

    store = dist.TCPStore("127.0.0.1", port, cfg.learners, is_master=False,
                          timeout=datetime.timedelta(seconds=STORE_TIMEOUT))
    if int(store.add(f"{PREFIX}inc/{rank}", 0)) >= 1:
        # A restart: messages left unread by the dead incarnation are stale; read and drop them
        # (this process is their only reader) before the peers see it back and write afresh.
        scratch = torch.zeros_like(params)
        for e in transport.in_edges(rank):
            if transport.fresh(e):
                transport.accumulate(e, scratch)
    membership = Membership(store, rank, cfg.learners, cfg.failure_timeout)
    membership.wait_for_all(STORE_TIMEOUT)
    repaired = RepairedTransport(transport, list(cfg.graph().edges), membership)
    repaired.bind(params)
    return repaired, membership


def _write_events(out: Path, rank: int, membership: Any) -> None:
    """This incarnation's fault events, for the parent's summary."""
    import json

    from galasim.atomic import atomic_write_text

    (out / "summaries").mkdir(exist_ok=True)
    atomic_write_text(out / "summaries" / f"learner{rank}-{membership.incarnation}.json",
                      json.dumps({"rank": rank, "incarnation": membership.incarnation,
                                  "events": membership.events}, default=str) + "\n")


def _learner_loop(rank: int, cfg: TrainConfig, transport: Any, shared: dict[str, torch.Tensor],
                  store_port: int | None = None) -> None:
    from galasim.gossip.buffer import GossipBuffer
    from galasim.rl import checkpoint

    configure_process(cfg.threads)
    device = resolve_device(cfg.device)
    out = Path(cfg.out)
    learner, logger, state = restore_learner(cfg, rank, device, cfg.envs_per_learner)
    gossip = membership = None
    if transport is not None and store_port is not None:
        transport, membership = _join_membership(rank, cfg, transport, learner.params, store_port)
    if transport is not None:
        gossip = GossipBuffer(rank, transport, cfg.sync_freq, resend=cfg.resend, timeout=cfg.gossip_timeout)
        checkpoint.restore_gossip_stats(gossip.stats, state)
    if membership is not None and membership.restarted:
        from galasim.rl.dist_train import STORE_TIMEOUT

        source = transport.rejoin(learner.params, timeout=STORE_TIMEOUT)
        transport.write_new_edges()
        print(f"learner {rank}: rejoined (incarnation {membership.incarnation}) with the parameters of "
              f"{'learner ' + str(source) if source is not None else 'its own checkpoint (no live in-neighbour)'}",
              flush=True)
    shared["frames"][rank] = learner.frames
    checkpoint_every = max(cfg.checkpoint_every // cfg.learners, learner.frames_per_update)
    next_checkpoint = (learner.frames // checkpoint_every + 1) * checkpoint_every
    last_log, frames_at_log = time.perf_counter(), learner.frames
    start = last_log - (state.get("seconds", 0.0) if state else 0.0)  # the logs' time goes on at a resume
    stats = None

    # The learners stop together, once their frames sum to the budget: a learner whose peers had
    # finished would train on alone, without the averaging its few simulators rely on (a Pong
    # learner with 4 lost a +18 policy within 200 updates that way; docs/training.md).
    while ((total := int(shared["frames"].sum())) < cfg.frames and not bool(shared["stop"][0])
           and not learner.solved()):
        # x <- x + delta (one A2C step); the lr decays with the run's progress, not this learner's
        stats = learner.iterate(total / cfg.frames)
        if gossip is not None:                          # send, then receive (may block)
            tick = time.perf_counter()
            if membership is not None:
                transport.poll()                        # heartbeat; repair around peers detected dead
            gossip.step(learner.params)
            learner.timing["gossip"] += time.perf_counter() - tick
        seqlock.publish(shared["published"], shared["version"], rank, learner.params)  # for the monitor
        shared["frames"][rank] = learner.frames
        shared["L"][rank] = learner.L
        shared["staleness"][rank] = gossip.stats.max_staleness if gossip else 0
        total = int(shared["frames"].sum())
        now = time.perf_counter()
        drain_episodes(learner, logger, total, now - start)
        if now - last_log >= cfg.log_every:
            fps = (learner.frames - frames_at_log) / (now - last_log)
            logger.train(train_row(learner, stats, gossip.stats if gossip else None, total, now - start, fps),
                         learner.frames, TB_KEYS)
            last_log, frames_at_log = now, learner.frames
        if learner.frames >= next_checkpoint:
            checkpoint.save_learner(out, rank, learner, logger, gossip, now - start)
            shared["checkpointed"][rank] = learner.frames
            next_checkpoint += checkpoint_every
    shared["done"][rank] = True  # the monitor's epsilon-ball leaves it out from now on
    if membership is not None:
        transport.leave(rank)  # finished: peers no longer wait for it, and it is not declared dead

    if stats is not None and learner.frames > frames_at_log:  # the last update, unless just logged
        now = time.perf_counter()
        fps = (learner.frames - frames_at_log) / max(now - last_log, 1e-9)
        total = int(shared["frames"].sum())
        logger.train(train_row(learner, stats, gossip.stats if gossip else None, total, now - start, fps),
                     learner.frames, TB_KEYS)
    checkpoint.save_learner(out, rank, learner, logger, gossip, time.perf_counter() - start)
    logger.close()
    learner.close()
    if membership is not None:
        _write_events(out, rank, membership)
