"""``galasim.train``: run GALA-A2C (or the A2C baseline) and monitor the epsilon-ball.

Modes:

* ``async`` (several learners): one process per learner (``torch.multiprocessing``), real asynchrony
  through :class:`galasim.gossip.shm.SharedMemoryTransport`; the parent draws the progress bar,
  monitors the network (consensus distance, diameter), stops the learners, and handles a learner
  that dies or hangs as ``--mode dist`` does (:class:`_Supervisor`: removed, the ring repaired,
  restarted with ``restart_failed``).
* ``sim``: one process; :func:`galasim.simulate` decides in virtual time which learner updates next
  and when messages arrive (``compute``/``delays`` models), calling back into the real learners for
  each local update. Same seed, same parameters, bit for bit.
* ``algo="a2c"``: the synchronous baseline, one learner over ``agents * envs_per_agent`` simulators.

Run folder layout: ``config.json``, ``logs/learner{r}_{episodes,train}.csv``, ``logs/network.csv``
(``async``/``dist``: also ``logs/learner_distance.csv``, each learner's distance to the mean),
``logs/tensorboard/``, ``checkpoints/learner{r}.pt``, ``summary.json``; ``async`` GALA also
``logs/pids.json`` (each learner's current process) and ``summaries/learner{r}-{incarnation}.json``
(a learner's fault events).
"""
from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from galasim._interrupt import sigterm_as_interrupt
from galasim.atomic import atomic_write_text
from galasim.rl import checkpoint, seqlock
from galasim.rl.config import RESUMABLE, TrainConfig, given_settings
from galasim.rl.monitor import NetworkLog, async_bound_note, async_bounds, consensus, rows_up_to

# Nominal update bound given to the simulator in --mode sim (see _train_sim).
SIM_L = 1e6
# Instead of --resume in --mode sim: a new run starts its logs afresh (as every run without --resume does).
_SIM_RERUN = "the same command reproduces the run exactly from its seed"


@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes
    ----------
    run_dir : Path
        The run folder.
    summary : dict
        Frames, wall time, frames/s, returns and the epsilon-ball figures (also in ``summary.json``).
    params : numpy.ndarray
        Final flat parameters, one row per learner (float32).
    """

    run_dir: Path
    summary: dict[str, Any]
    params: np.ndarray = field(repr=False)


def train(config: TrainConfig | None = None, *, resume: bool = False, preset: str | None = None,
          config_file: str | Path | None = None, **overrides: Any) -> TrainResult:
    """Train GALA-A2C or A2C; see :class:`galasim.rl.config.TrainConfig` for every setting.

    Parameters
    ----------
    config : TrainConfig, optional
        A full configuration; otherwise one is built from ``preset``, ``config_file`` and ``overrides``.
    resume : bool
        Continue the run in ``out`` from its checkpoints with its saved configuration. ``frames``
        may be raised, and the settings in :data:`~galasim.rl.config.RESUMABLE` (logging,
        checkpoints, threads) may change; another value of any other setting is refused. For a
        ``config`` object, the settings given are those that differ from the defaults.
    preset, config_file, **overrides
        See :func:`galasim.rl.config.make_config`.

    Returns
    -------
    TrainResult

    Examples
    --------
    >>> import galasim, tempfile
    >>> r = galasim.train(env="CartPole-v1", agents=2, envs_per_agent=2, frames=400, mode="sim",
    ...                   out=tempfile.mkdtemp(), progress=False, tensorboard=False)
    >>> r.summary["frames"] >= 400, r.params.shape[0]
    (True, 2)
    """
    if config is None:
        given = given_settings(preset, config_file, **overrides)
        cfg = TrainConfig.from_dict(given)
    else:
        cfg, given = config, _differing_from_defaults(config)
    cfg.validate()
    run = Path(cfg.out)
    if cfg.mode == "dist":  # this process is one rank (galasim.rl.dist_train)
        return _train_dist(cfg, resume)
    if resume:
        cfg = _resume_config(run, cfg, set(given))
    elif (run / "checkpoints").exists() and any((run / "checkpoints").glob("learner*.pt")):
        raise ValueError(f"run folder {str(run)!r} already holds checkpoints; pass --resume to continue "
                         "it or choose another --out")
    if cfg.algo == "gala" and cfg.agents < 2:
        raise ValueError(f"GALA needs agents >= 2 learners, got {cfg.agents}; use --algo a2c for one learner")
    if cfg.mode == "sim" and cfg.algo == "a2c":
        raise ValueError("--mode sim simulates gossip between learners; the A2C baseline has none (use --mode async)")
    plan = _plan(cfg)  # every check that can fail, before the run folder is touched
    run.mkdir(parents=True, exist_ok=True)
    (run / "logs").mkdir(exist_ok=True)
    atomic_write_text(run / "config.json", json.dumps(cfg.to_dict(), indent=2) + "\n")
    from galasim.rl.learner import torch_threads

    # kill (SIGTERM) stops the run as Ctrl-C does.
    if cfg.mode == "sim":
        with sigterm_as_interrupt(), torch_threads(cfg.threads):  # this process is the learners'
            summary, params = _train_sim(cfg, plan)
    else:
        # This process only supervises and monitors: one torch thread, so that its distances take
        # no more than one share of the learners' cores.
        with sigterm_as_interrupt(), torch_threads(1):
            summary, params = _train_async(cfg, resume, plan)
    atomic_write_text(run / "summary.json", json.dumps(_jsonable(summary), indent=2) + "\n")
    return TrainResult(run, summary, params)


def _train_dist(cfg: TrainConfig, resume: bool) -> TrainResult:
    from galasim.rl.dist_train import dist_env, train_dist

    env = dist_env()
    run = Path(cfg.out)
    if cfg.algo == "gala" and env["world"] < 2:
        raise ValueError(f"GALA needs at least 2 ranks, got WORLD_SIZE={env['world']}; use --algo a2c for one")
    # A restarted rank (rejoin) continues from its own checkpoint; otherwise one must not be overwritten.
    if not resume and checkpoint.exists(run, env["rank"]):
        raise ValueError(f"run folder {str(run)!r} already holds rank {env['rank']}'s checkpoint; pass "
                         "--resume (or --rejoin for a restarted rank) or choose another --out")
    cfg.agents = env["world"]  # one learner per rank
    run.mkdir(parents=True, exist_ok=True)
    (run / "logs").mkdir(exist_ok=True)
    atomic_write_text(run / "config.json", json.dumps(cfg.to_dict(), indent=2) + "\n")
    summary, params = train_dist(cfg, resume)
    return TrainResult(run, summary, params[None, :])


def _resume_config(run: Path, requested: TrainConfig, given: set[str]) -> TrainConfig:
    """The saved configuration of ``run``, with what ``requested`` may change on a resume (``given``:
    the settings the caller set); another value of a setting that decides what the run learns is refused."""
    from galasim.rl.envs import resolve_env

    saved = run / "config.json"
    if not saved.is_file():
        raise FileNotFoundError(f"cannot resume: {str(saved)!r} does not exist (was {str(run)!r} a galasim run?)")
    data = json.loads(saved.read_text())
    cfg = TrainConfig.from_dict(data)
    if cfg.mode == "sim":
        raise ValueError(f"--resume is not supported for --mode sim runs (the simulator's state is not "
                         f"checkpointed); {_SIM_RERUN}")
    for name in sorted(given - set(RESUMABLE) - {"extra"}):
        ours, theirs = getattr(requested, name), getattr(cfg, name)
        same = resolve_env(ours) == resolve_env(theirs) if name == "env" else ours == theirs
        if not same:
            flag = _flag(name)
            raise ValueError(f"--resume continues run folder {str(run)!r} with its own settings, and {flag} "
                             f"{_shown(ours)} differs from its {_shown(theirs)}; a resume may change only "
                             f"{', '.join(_flag(k) for k in RESUMABLE if k != 'out')} (start a new run in "
                             f"another --out to change {flag})")
    for name in given & set(RESUMABLE) - {"frames", "out"}:
        setattr(cfg, name, getattr(requested, name))
    made = 0
    for rank in range(cfg.learners):
        if checkpoint.exists(run, rank):  # a corrupt file is reported before anything starts
            made += checkpoint.load_learner(run, rank)["learner"]["frames"]
    if "frames" in given:  # the run's new total
        if requested.frames <= made:
            raise ValueError(f"--frames {requested.frames:,} is not more than the {made:,} frames that run "
                             f"folder {str(run)!r} has made; pass a larger --frames")
        cfg.frames = requested.frames
    if (run / "summary.json").is_file():  # it ended: resuming would only rewrite its summary
        if made >= cfg.frames:
            raise ValueError(f"run folder {str(run)!r} is complete ({made:,} of {cfg.frames:,} frames); pass "
                             "a larger --frames to continue it")
        if cfg.stop_return is not None:
            raise ValueError(f"run folder {str(run)!r} is complete: its learners reached --stop-return "
                             f"{cfg.stop_return:g} after {made:,} frames")
    cfg.progress, cfg.out = requested.progress, str(run)
    return cfg


def _differing_from_defaults(config: TrainConfig) -> dict[str, Any]:
    defaults = TrainConfig()
    return {f.name: getattr(config, f.name) for f in fields(TrainConfig)
            if getattr(config, f.name) != getattr(defaults, f.name)}


def _flag(name: str) -> str:
    """The command-line flag of a TrainConfig field (``progress``: ``--no-progress``)."""
    return {"progress": "--no-progress", "tensorboard": "--no-tensorboard"}.get(name, "--" + name.replace("_", "-"))


def _shown(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass
class _Plan:
    """What :func:`_plan` settled before the run folder is touched."""

    device: torch.device
    flat: torch.Tensor                    # the learners' common initial parameters
    graph: Any                            # GALA's graph (None for the A2C baseline)
    slots: list[tuple[int, int]] | None   # --mode async GALA: every edge the repair rule can create


# Lower bounds of a run's memory, from the private memory measured here: a learner process
# (interpreter, torch, model, optimizer, rollouts) 260 MiB on CartPole, 320 MiB on Pong; an Atari
# simulator 1.9-2.9 MiB, a gymnasium CartPole 0.02 MiB. Used only to refuse what cannot fit.
PROCESS_BYTES = 250 * 2**20
SIMULATOR_BYTES = {"atari": 3 * 2**19, "gym": 10 * 2**10}


def _plan(cfg: TrainConfig) -> _Plan:
    """The device, the environment id, the graph and the memory: every check that can fail before
    a learner starts, so a refused run writes nothing."""
    from galasim._validation import check_memory
    from galasim.rl.envs import VecEnv
    from galasim.rl.learner import resolve_device
    from galasim.rl.model import make_model, warn_if_emulated

    device = resolve_device(cfg.device)
    warn_if_emulated(cfg.precision, device)
    probe = VecEnv(cfg.env, 1, 0)  # also the early "unknown environment" error
    obs_shape, n_actions, kind = probe.observation_space.shape, probe.action_space.n, probe.spec.kind
    probe.close()
    _, flat = make_model(obs_shape, n_actions, cfg.seed, cfg.hidden, precision=cfg.precision)
    graph = cfg.graph() if cfg.algo == "gala" else None
    processes = cfg.learners + 1 if cfg.mode == "async" else 1

    def check(slots: int) -> None:
        # Each learner holds its parameters, gradients, RMSprop state and a copy; async shares one
        # more copy per learner and one per message slot (on the GPU with --device cuda).
        vectors = cfg.learners * 5 + (slots if device.type == "cpu" else 0)
        needed = (processes * PROCESS_BYTES + cfg.learners * cfg.envs_per_learner * SIMULATOR_BYTES[kind]
                  + vectors * flat.numel() * flat.element_size())
        check_memory(f"--agents {cfg.agents} --envs-per-agent {cfg.envs_per_agent} ({processes} processes, "
                     f"{vectors:,} parameter vectors of {flat.numel():,})", needed,
                     "use fewer agents, simulators or peers")

    slots = None
    if graph is not None and cfg.mode == "async":
        from galasim.gossip.repair import possible_edges

        check(graph.number_of_edges())  # first without the repair's slots, which take O(n^2) to list
        slots = possible_edges(list(graph.edges), range(cfg.learners))
    check(len(slots) if slots else 0)
    return _Plan(device, flat, graph, slots)


# -- async: one process per learner ------------------------------------------------------------------
def _train_async(cfg: TrainConfig, resume: bool, plan: _Plan) -> tuple[dict[str, Any], np.ndarray]:
    import torch.multiprocessing as mp

    from galasim.gossip.shm import SharedMemoryTransport

    device, flat, graph = plan.device, plan.flat, plan.graph
    run = Path(cfg.out)
    dim, n = flat.numel(), cfg.learners
    transport = membership = port = store = None
    if graph is not None:
        # Failed learners, as in --mode dist: the learners agree on who is dead through a store
        # hosted here; every edge the repair rule can create gets a slot (n(n-1) on a ring).
        from galasim.gossip.failures import Membership
        from galasim.rl.dist_train import free_port, host_store

        port = free_port()
        store = host_store(port, n)  # held until the run ends
        membership = Membership(store, -1, n, cfg.failure_timeout, observer=True)
        transport = SharedMemoryTransport(plan.slots, dim, device=device)
    shared = {
        "frames": torch.zeros(n, dtype=torch.int64).share_memory_(),
        "checkpointed": torch.zeros(n, dtype=torch.int64).share_memory_(),  # frames in each checkpoint
        "published": flat.repeat(n, 1).share_memory_(),
        "version": torch.zeros(n, dtype=torch.int64).share_memory_(),  # galasim/rl/seqlock.py
        "stop": torch.zeros(1, dtype=torch.bool).share_memory_(),
        "done": torch.zeros(n, dtype=torch.bool).share_memory_(),
        "L": torch.zeros(n, dtype=torch.float64).share_memory_(),
        "staleness": torch.zeros(n, dtype=torch.int64).share_memory_(),
    }
    start_frames = 0
    if resume:
        for rank in range(n):
            if checkpoint.exists(run, rank):
                state = checkpoint.load_learner(run, rank)["learner"]
                shared["frames"][rank] = shared["checkpointed"][rank] = state["frames"]
                shared["published"][rank].copy_(state["params"])
        start_frames = int(shared["frames"].sum())
    # Rows written after the checkpoints (all of an attempt killed before its first) are cut.
    monitor = NetworkLog(run, start_frames, rows_up_to(run, start_frames)[1], cfg.tensorboard)
    for stale in run.glob("summaries/learner*-*.json"):  # fault events of an earlier attempt
        stale.unlink()
    ctx = mp.get_context("spawn")
    errors = ctx.SimpleQueue()
    sup = _Supervisor(cfg, ctx, transport, shared, errors, membership, port)
    started = time.perf_counter()
    for r in range(n):
        sup.start(r)
    bar = sup.bar = _progress(cfg, start_frames)
    last_frames = start_frames
    next_row = started
    # One float64 buffer for the monitor's copies, kept for the whole run (spread() centres it)
    snapshot = torch.empty(shared["published"].shape, dtype=torch.float64)
    interrupted = False
    try:
        while sup.running() and not shared["stop"][0]:
            time.sleep(0.25)
            total = int(shared["frames"].sum())
            if bar is not None:
                bar.update(total - last_frames)
            last_frames = total
            if sup.check() is not None:  # the A2C baseline's only learner failed: the run stops
                break
            if time.perf_counter() >= next_row:  # the network monitor: one row every log_every s
                # The epsilon-ball is about learners that still iterate: one that has left its loop
                # keeps its last parameters while the others finish their update, so it is left out.
                iterating = [r for r in sup.live() if not shared["done"][r]]
                # Copies of whole writes: the learners go on writing (galasim/rl/seqlock.py)
                rows = seqlock.read(shared["published"], shared["version"], iterating, out=snapshot)
                monitor.write(time.perf_counter() - started, total, iterating, rows,
                              running=int((shared["frames"][iterating] > 0).sum()),  # past their first update
                              L=float(shared["L"].max()), max_staleness=int(shared["staleness"].max()))
                next_row = time.perf_counter() + cfg.log_every
        if shared["stop"][0]:  # a learner was sent SIGTERM: the run stops as on Ctrl-C
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        shared["stop"][0] = interrupted = True
        raise
    finally:
        sup.stop()  # stopped learners first finish their update and write a checkpoint
        if bar is not None:
            bar.update(int(shared["frames"].sum()) - last_frames)
            bar.close()
        monitor.close()
        if interrupted:
            print(f"galasim train: stopped; continue from the last checkpoints with: "
                  f"galasim train --out {cfg.out} --resume", file=sys.stderr)
    finished = sup.finished()
    if not finished:
        raise RuntimeError(sup.failure_message())
    wall = time.perf_counter() - started
    params = shared["published"].numpy().copy()
    live = sup.live()
    distance, diameter = consensus(shared["published"][live]) if live else (0.0, 0.0)
    states = [checkpoint.load_learner(run, r) for r in range(n) if checkpoint.exists(run, r)]
    L = max(s["learner"]["max_update_norm"] for s in states) / cfg.lr
    max_staleness = max((s["gossip"] or {}).get("max_staleness", 0) for s in states)
    summary = run_summary(cfg, run, wall, int(shared["frames"].sum()) - start_frames,
                          int(shared["frames"].sum()))
    summary.update({
        # Without a snapshot of two learners iterating the spread was never seen: not measured, not 0
        # (one learner is its own mean: 0 by construction).
        "empirical": monitor.empirical if monitor.samples or n == 1 else None,
        "empirical_diameter": monitor.diameter if monitor.samples or n == 1 else None,
        "empirical_samples": monitor.samples,
        "final_distance": distance,  # all live learners at the end, early finishers included
        "L": L, "max_staleness": int(max_staleness),
    })
    if graph is None:
        summary.update({"epsilon": 0.0, "bound_holds": True,
                        "bound_note": "one learner: every parameter vector is the network mean"})
    else:
        summary.update(async_bounds(graph, cfg.lr, L, int(max_staleness), summary["empirical"]))
    if membership is not None:
        summary.update(sup.faults(run, finished))
    return summary, params


class _Supervisor:
    """The parent's side of ``--mode async``: starts the learner processes and watches them.

    The A2C baseline has one learner: its failure ends the run, as before. GALA learners: a learner
    process that exits with an error or a signal (its exception line, when it raised, is its
    reason), or whose heartbeat stops for ``failure_timeout`` s (a hung process, then killed), is
    declared dead in the store; the survivors repair the ring around it
    (:class:`~galasim.gossip.failures.RepairedTransport`) and go on. With ``restart_failed`` the
    learner is started again (at most that many times) and rejoins from its checkpoint and a live
    in-neighbour's parameters. The run fails only if no learner finishes.
    """

    def __init__(self, cfg, ctx, transport, shared, errors, membership, port):
        self.cfg, self.ctx, self.transport, self.shared = cfg, ctx, transport, shared
        self.errors, self.membership, self.port = errors, membership, port
        self.procs: list[Any] = [None] * cfg.learners
        self.restarts = [0] * cfg.learners
        self.exited: dict[int, int] = {}     # rank -> exit code of its current process
        self.reasons: dict[int, str] = {}    # rank -> why its last process died
        self.messages: dict[int, str] = {}   # rank -> its last exception line
        self.killed: dict[int, str] = {}     # rank -> why the parent killed it
        self.failure: tuple[int, str] | None = None
        self.bar = None
        self.pids: dict[int, int] = {}
        self.closing = False  # the run is over: nothing is restarted any more

    def start(self, r: int) -> None:
        from galasim.rl.learner import run_learner

        if self.transport is not None:
            self.transport.gone[r] = False  # a restarted learner takes part again
        self.shared["done"][r] = False
        p = self.ctx.Process(target=run_learner, daemon=True,
                             args=(r, self.cfg, self.transport, self.shared, self.errors, self.port))
        p.start()
        self.procs[r] = p
        self.exited.pop(r, None)
        self.killed.pop(r, None)
        self.pids[r] = p.pid
        # Where to find a learner process (to inspect or, in the tests, to kill one).
        atomic_write_text(Path(self.cfg.out) / "logs" / "pids.json", json.dumps(self.pids) + "\n")

    def running(self) -> bool:
        """Whether a learner process is alive, or one has exited that :meth:`check` has not seen
        (it may restart it)."""
        return any(p.is_alive() or (self.membership is not None and r not in self.exited)
                   for r, p in enumerate(self.procs))

    def live(self) -> list[int]:
        """Learners not currently dead (rows of the network monitor)."""
        dead = self.membership.dead if self.membership is not None else set()
        return [r for r in range(self.cfg.learners) if r not in dead]

    def say(self, message: str) -> None:
        if self.bar is not None:
            self.bar.write(message, file=sys.stderr)
        else:
            print(message, file=sys.stderr, flush=True)

    def check(self) -> tuple[int, str] | None:
        """Read the learners' errors and exits, detect hung learners, restart; returns the A2C
        baseline's failure, if any (GALA failures are handled here)."""
        while not self.errors.empty():
            rank, message, _ = self.errors.get()
            self.messages[rank] = message
        m = self.membership
        if m is None:
            for r, p in enumerate(self.procs):
                if r in self.messages or (p.exitcode not in (None, 0)):
                    self.failure = (r, self.messages.get(r) or _exit_reason(p.exitcode))
            return self.failure
        if m.all_started():
            for r in m.poll(force=True).dead:  # silent for failure_timeout s: hung, or dying
                if self.procs[r].is_alive():
                    reason = next(e["reason"] for e in reversed(m.events) if e["agent"] == r)
                    self.killed[r] = reason
                    self.procs[r].kill()
        for r, p in enumerate(self.procs):
            if p.exitcode is None or r in self.exited:
                continue
            self.exited[r] = p.exitcode
            if p.exitcode == 0:
                continue
            if r in self.killed:
                reason = f"{self.killed[r]}; killed by the parent"
            else:
                reason = _exit_reason(p.exitcode)
                if r in self.messages:
                    reason += f": {self.messages.pop(r)}"
                if r not in m.dead:
                    m.declare_dead(r, reason)
            self.reasons[r] = reason
            retry = (self.restarts[r] < self.cfg.restart_failed and not self.closing
                     and not bool(self.shared["stop"][0]))
            self.say(f"galasim train: learner {r} failed ({reason}); the survivors repair the graph and go "
                     "on" + ("; restarting it" if retry else ""))
            if retry:
                # It restarts from its checkpoint: count only those frames meanwhile, or its peers
                # would stop short of the budget and leave it to make the difference alone.
                self.shared["frames"][r] = self.shared["checkpointed"][r]
                self.restarts[r] += 1
                self.start(r)
        return None

    def stop(self) -> None:
        """End every learner process (after the run, a failure or Ctrl-C): bounded joins."""
        self.closing = True
        if self.failure is not None:
            self.shared["stop"][0] = True
        # Stopped learners finish their update and write a checkpoint; then they are killed.
        deadline = time.perf_counter() + (15 if self.shared["stop"][0] else 30)
        for p in self.procs:
            if p is None:
                continue
            p.join(max(deadline - time.perf_counter(), 0.1))
            if p.is_alive():
                p.kill()
                p.join(5)

    def finished(self) -> list[int]:
        self.check()  # the last exits
        if self.failure is not None:
            return []
        return [r for r, p in enumerate(self.procs) if p.exitcode == 0]

    def failure_message(self) -> str:
        if self.failure is not None:
            return f"learner {self.failure[0]} failed: {self.failure[1]}"
        failed = "; ".join(f"learner {r}: {why}" for r, why in sorted(self.reasons.items()))
        return f"no learner finished its budget ({failed or 'all stopped'})"

    def faults(self, run: Path, finished: list[int]) -> dict[str, Any]:
        """The summary's fault fields, as ``--mode dist`` reports them."""
        from galasim.gossip.failures import fault_log, interruptions

        m = self.membership
        events = list(m.events)  # the parent's view: every death with its reason, every rejoin
        for f in sorted(run.glob("summaries/learner*-*.json")):
            try:  # the learners' own: whose parameters a rejoined learner copied
                events += [e for e in json.loads(f.read_text())["events"] if e["event"] == "rejoin-copy"]
            except (OSError, ValueError, KeyError):
                continue
        lines, down = interruptions(events, m.now())
        return {
            "learners_finished": finished,
            "learners_failed": {r: why for r, why in sorted(self.reasons.items()) if r not in finished},
            "restarts": {r: k for r, k in enumerate(self.restarts) if k},
            "faults_log": fault_log(events), "assumptions_interrupted": lines, "interrupted_time": down,
            "bound_note": async_bound_note(interrupted=bool(lines)),
        }


def _exit_reason(code: int | None) -> str:
    """``killed by signal SIGKILL`` or ``exited with code 1``."""
    import signal

    if code is not None and code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


def run_summary(cfg: TrainConfig, run: Path, wall: float, new_frames: int, frames: int,
                logs: int | None = None) -> dict[str, Any]:
    """The part of ``summary.json`` common to every mode: the configuration, frames, speed and the
    network's mean true return of its last 100 games. ``logs``: how many ``learner{r}_episodes.csv``
    to read (default: one per learner; ``--mode dist --algo a2c`` has one per rank)."""
    import pandas as pd

    tables = [pd.read_csv(f) for r in range(cfg.learners if logs is None else logs)
              if (f := run / "logs" / f"learner{r}_episodes.csv").exists()]
    episodes = pd.concat(tables) if tables else pd.DataFrame({"total_frames": [], "return": []})
    # The network's last 100 episodes, in the order they ended (total frames over all learners).
    returns = episodes.sort_values("total_frames", kind="stable")["return"].tolist()[-100:]
    return {
        "env": cfg.env, "algo": cfg.algo, "mode": cfg.mode, "learners": cfg.learners,
        "envs_per_learner": cfg.envs_per_learner, "seed": cfg.seed, "frames": frames,
        "wall_seconds": wall, "fps": new_frames / wall if wall > 0 else math.nan,
        "episodes_in_mean": len(returns),
        "mean_return_last_100": float(np.mean(returns)) if returns else math.nan,
    }


def _progress(cfg: TrainConfig, initial: int):
    if not cfg.progress:
        return None
    from tqdm import tqdm

    return tqdm(total=cfg.frames, initial=initial, unit="frame", unit_scale=True, dynamic_ncols=True,
                desc=f"{cfg.algo} {cfg.learners}x{cfg.envs_per_learner}")


# -- sim: the event scheduler drives real learners -----------------------------------------------------
def _train_sim(cfg: TrainConfig, plan: _Plan) -> tuple[dict[str, Any], np.ndarray]:
    import pandas as pd

    import galasim
    from galasim.rl.allocator import keep_freed_blocks
    from galasim.rl.learner import EPISODE_COLUMNS, TB_KEYS, TRAIN_COLUMNS, Learner, drain_episodes, train_row
    from galasim.rl.logger import Logger

    keep_freed_blocks()  # this process is the learners' (train() sets their torch threads around it)
    device = plan.device
    run = Path(cfg.out)
    learners = [Learner(cfg, r, device, cfg.envs_per_agent) for r in range(cfg.agents)]
    loggers = [Logger(run / "logs", f"learner{r}", EPISODE_COLUMNS, TRAIN_COLUMNS,
                      tensorboard=cfg.tensorboard) for r in range(cfg.agents)]  # fresh logs: no resume
    origin = learners[0].params.detach().double().cpu().clone()  # common initialisation theta_0
    per_update = learners[0].frames_per_update
    iterations = max(1, math.ceil(cfg.frames / cfg.agents / per_update))
    bar = _progress(cfg, 0)
    max_delta = [0.0] * cfg.agents
    started = time.perf_counter()

    def update(agent: int, k: int, x: np.ndarray) -> np.ndarray:
        # The simulator holds x_i = theta_i - theta_0 in float64 (all rows start at 0, the identical
        # initialisation); the learner's float32 network is theta_0 + x_i.
        learner = learners[agent]
        with torch.no_grad():
            learner.params.copy_(origin + torch.from_numpy(x))
        stats = learner.iterate(learner.frames / (iterations * per_update))  # each makes an equal share
        delta = (learner.params.detach().double().cpu() - origin).numpy() - x
        max_delta[agent] = max(max_delta[agent], float(np.linalg.norm(delta)))
        total = sum(le.frames for le in learners)
        elapsed = time.perf_counter() - started
        drain_episodes(learner, loggers[agent], total, elapsed)
        loggers[agent].train(train_row(learner, stats, None, total, elapsed, math.nan),
                             learner.frames, TB_KEYS)
        if bar is not None:
            bar.update(per_update)
        return delta

    try:
        result = galasim.simulate(
            cfg.topology, "gala", agents=cfg.agents, dim=origin.numel(), iterations=iterations,
            lr=cfg.lr, L=SIM_L, updates=update, compute=cfg.compute, delays=cfg.delays,
            sync_freq=cfg.sync_freq, seed=cfg.seed, peers=cfg.peers,
        )
    except KeyboardInterrupt:
        print(f"galasim train: stopped; a --mode sim run cannot resume: {_SIM_RERUN}", file=sys.stderr)
        raise
    finally:
        if bar is not None:
            bar.close()
    wall = time.perf_counter() - started
    params = (origin[None, :] + torch.from_numpy(result.state)).float()
    for learner, logger, row in zip(learners, loggers, params):
        with torch.no_grad():
            learner.params.copy_(row)
        checkpoint.save_learner(run, learner.rank, learner, logger, seconds=wall)
        logger.close()
        learner.close()
    traj = result.trajectory
    pd.DataFrame({"time": traj["time"], "total_frames": np.nan, "running": np.nan, "distance": traj["distance"],
                  "diameter": traj["diameter"], "empirical": traj["distance"].cummax(),
                  "L": np.nan, "max_staleness": np.nan}).to_csv(run / "logs" / "network.csv", index=False)
    s = result.summary
    L = max(max_delta) / cfg.lr  # measured: max ||delta|| / alpha over every update
    summary = run_summary(cfg, run, wall, sum(le.frames for le in learners), sum(le.frames for le in learners))
    # The simulator ran with a nominal L = SIM_L (so that its A1 check passes: real updates have no
    # known bound in advance); its certificate and epsilon are linear in alpha*L, so they are rescaled
    # to the measured L. The empirical distance is measured directly on the learners' parameters.
    certificate, epsilon = s["certificate"] * L / SIM_L, s["epsilon"] * L / SIM_L
    holds = None
    if s["assumptions_hold"] and math.isfinite(certificate):
        holds = bool(s["empirical"] <= certificate * (1 + 1e-9) + 1e-12 and certificate <= epsilon)
    summary.update({
        "empirical": s["empirical"], "empirical_diameter": s["empirical_diameter"], "L": L,
        "certificate": certificate, "epsilon": epsilon, "bound_holds": holds,
        "assumptions_hold": s["assumptions_hold"], "violated": s["violated"],
        "max_staleness": s["max_staleness"], "virtual_time": s["virtual_time"],
        "deadlock": s.get("deadlock", False),
    })
    return summary, params.numpy()


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, (np.floating, np.integer)):
            v = v.item()
        if isinstance(v, float) and not math.isfinite(v):
            v = str(v)
        out[k] = v
    return out
