"""The configuration of a ``galasim train`` run: one dataclass, one docstring per field.

Defaults follow the GALA reference code (facebookresearch/gala) and the A2C standard; a YAML or
TOML file, ``--preset gala-paper`` and command-line flags override them in that order.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from galasim._settings_file import read_settings_file
from galasim.gossip.protocol import parse_sync_freq
from galasim.sim.models import parse_compute, parse_delays

MODES = ("async", "sim", "dist")
ALGOS = ("gala", "a2c")
DEVICES = ("auto", "cpu", "cuda")
ACTING_GRAPHS = ("auto", "keep", "recompute")
RMSPROPS = ("torch", "tf")
PRECISIONS = ("fp32", "bf16-mixed")
MAX_FRAMES = 10**12          # a larger budget is a typo (116 days at 100,000 frames/s)
MAX_ENVS_PER_LEARNER = 1024  # a larger request is a typo, and would take minutes just to create
MAX_THREADS = 256  # torch threads per learner process: more is a typo
# What --resume may change: how the run is driven and logged, never what it learns.
RESUMABLE = ("frames", "out", "progress", "tensorboard", "threads", "log_every", "checkpoint_every")

PRESETS: dict[str, dict[str, Any]] = {
    # The paper's Pong run (facebookresearch/gala README): 4 learners x 16 simulators, 1 peer on a
    # directed ring, lr 1.4e-3, and --sync-freq 100000000, i.e. never block.
    "gala-paper": {"algo": "gala", "agents": 4, "envs_per_agent": 16, "topology": "ring", "peers": 1,
                   "lr": 1.4e-3, "sync_freq": math.inf},
}


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved as ``config.json`` in the run folder)."""

    env: str = "PongNoFrameskip-v4"
    """Environment: an Atari id (``PongNoFrameskip-v4``, ``ALE/Pong-v5``, ``pong``) or any gymnasium id."""
    algo: str = "gala"
    """``gala``: several learners gossiping; ``a2c``: the synchronous baseline, one learner over
    ``agents * envs_per_agent`` simulators."""
    agents: int = 4
    """Number of actor-learners (for ``a2c``: how many learners' simulators the single learner gets)."""
    envs_per_agent: int = 16
    """Simulators per learner."""
    topology: str = "ring"
    """Communication graph, a name from :data:`galasim.topology.NAMES` (the paper: directed ring)."""
    peers: int = 1
    """Out-peers per learner for the named topology."""
    sync_freq: float = 4
    """GALA's staleness bound: iterations without mixing before a learner blocks (0 always waits,
    ``inf`` never)."""
    resend: bool = False
    """galasim's extension (not the reference protocol): re-send skipped writes while blocked."""
    gossip_timeout: float = 600.0
    """Seconds a blocked learner waits for its in-peers before the run stops with a diagnosis."""
    failure_timeout: float = 30.0
    """``--mode async`` and ``dist`` (GALA): seconds without a heartbeat after which a learner is
    declared dead, removed from the graph with the repair rule, and no longer waited for (``async``:
    a learner process that exits is removed at once, a hung one is killed)."""
    restart_failed: int = 0
    """``--mode async``: restart a failed learner up to this many times; it rejoins from its own
    checkpoint and the parameters of a live in-neighbour. 0: the run finishes with the survivors."""
    frames: int = 10_000_000
    """Total emulator frames over all learners (agent steps times frameskip). ``async`` and ``dist``
    GALA learners stop together once their frames sum to it (a faster learner makes more of them),
    so none trains on alone after its peers have finished. ``--mode sim``: every learner completes
    an equal share, and faster learners keep going meanwhile (as in the simulator), so the total
    can exceed it."""
    mode: str = "async"
    """``async``: one process per learner, shared-memory gossip; ``sim``: one process, the event
    scheduler decides in virtual time which learner updates next (bit-reproducible)."""
    compute: str = "exponential:1"
    """``--mode sim``: compute-time model of the simulator's grammar (e.g. ``stragglers:0.25,4``)."""
    delays: str = "0"
    """``--mode sim``: message delay model of the simulator's grammar (mean, in compute units)."""
    device: str = "auto"
    """``auto`` (CUDA if available), ``cpu`` or ``cuda``; all learners share the one device."""
    seed: int = 0
    """Controls everything: network initialisation (identical for all learners), env seeds, actions."""
    threads: int = 1
    """torch threads per learner process (2 threads collapse ~10x when another process holds a core)."""
    acting_graph: str = "auto"
    """``keep``: the update backpropagates through the graphs of the rollout's acting forwards (no
    second forward); ``recompute``: act without a graph, and the update runs one forward over the
    whole rollout (one batched backward); ``auto``: keep with 8 or more simulators per learner,
    recompute below (the faster one on CPU, measured in docs/benchmarks.md). The same update either
    way, up to rounding."""

    precision: str = "fp32"
    """``bf16-mixed``: the Nature CNN trunk (convolutions and the 512-unit layer) computes in
    bfloat16, forward and backward, under ``torch.autocast``; parameters, gradients, the heads, the
    losses, RMSprop and gossip stay float32. Faster on CPUs with native bfloat16 (AVX512-BF16 or
    AMX: docs/benchmarks.md; not measured on a GPU); not the reference code's arithmetic (galasim's
    option). Image observations only."""

    lr: float = 7e-4
    """RMSprop learning rate."""
    rms_eps: float = 1e-5
    """RMSprop epsilon."""
    rms_alpha: float = 0.99
    """RMSprop smoothing constant."""
    rmsprop: str = "torch"
    """``torch``: PyTorch's RMSprop, as the GALA reference code uses; ``tf``: TensorFlow's, as
    OpenAI Baselines' A2C uses (averages start at 1, epsilon under the square root; smaller first
    steps; galasim/rl/optim.py)."""
    gamma: float = 0.99
    """Discount factor."""
    n_steps: int = 5
    """Rollout length per update (n-step returns)."""
    gae: bool = False
    """Use generalised advantage estimation instead of n-step returns."""
    gae_lambda: float = 0.95
    """GAE's lambda (only with ``gae``)."""
    ent_coef: float = 0.01
    """Entropy bonus coefficient."""
    vf_coef: float = 0.5
    """Value loss coefficient."""
    max_grad_norm: float = 0.5
    """Gradient-norm clip."""
    lr_decay: bool = False
    """Linear learning-rate decay to 0 over the run: an update starts at ``lr * (1 - f)``, ``f`` the
    fraction of ``frames`` spent (``async`` and ``dist`` GALA: the learners' summed frames, so they
    all reach 0 together at the end; ``sim`` and the A2C baseline: the learner's own equal share)."""
    clip_rewards: bool = True
    """Clip rewards to their sign for learning (Atari); reported scores stay unclipped."""
    hidden: int = 64
    """Width of the MLP's two hidden layers (vector observations)."""
    sticky_actions: float = 0.0
    """Atari repeat-action probability (0: the DeepMind setting; ALE's v5 default is 0.25)."""
    max_episode_frames: int = 108_000
    """Atari: a game is truncated after this many frames (108,000 = 30 minutes, the standard cap)."""
    stop_return: float | None = None
    """Stop a learner early once the mean true return of its last ``stop_window`` episodes reaches this."""
    stop_window: int = 20
    """Episodes in that mean."""

    out: str = "runs/run"
    """Run folder: config, CSV logs, TensorBoard events, checkpoints, summary."""
    checkpoint_every: int = 1_000_000
    """Write a checkpoint every this many frames (over all learners) and at the end."""
    log_every: float = 2.0
    """Seconds between progress/network-monitor rows."""
    tensorboard: bool = True
    """Also write TensorBoard event files."""
    progress: bool = True
    """Show a progress bar (frames, FPS, ETA)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Free-form notes kept with the run."""

    def __post_init__(self) -> None:
        self.validate()

    # -- validation: one line naming the value and what is allowed --------------------------------
    def validate(self) -> None:
        self.frames = parse_frames(self.frames)
        self.sync_freq = parse_sync_freq(self.sync_freq)
        for name in ("agents", "envs_per_agent", "peers", "n_steps", "threads", "stop_window",
                     "max_episode_frames", "hidden"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        for name in ("seed", "restart_failed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
        # finite: an infinite rate or timeout would turn into NaN parameters or a run that never ends
        for name in ("lr", "rms_eps", "max_grad_norm", "gossip_timeout", "failure_timeout", "log_every"):
            value = getattr(self, name)
            if not (_finite_number(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        for name in ("ent_coef", "vf_coef"):
            value = getattr(self, name)
            if not (_finite_number(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        for name in ("gamma", "gae_lambda", "rms_alpha", "sticky_actions"):
            value = getattr(self, name)
            if not (_finite_number(value) and 0 <= value <= 1):
                raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
        if self.stop_return is not None and not _finite_number(self.stop_return):
            raise ValueError(f"stop_return must be a finite number (a mean true return), got {self.stop_return!r}")
        for name in ("resend", "gae", "lr_decay", "clip_rewards", "tensorboard", "progress"):
            if not isinstance(getattr(self, name), bool):  # a config file's "false" is a true string
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        for name, allowed in (("mode", MODES), ("algo", ALGOS), ("device", DEVICES),
                              ("acting_graph", ACTING_GRAPHS), ("rmsprop", RMSPROPS),
                              ("precision", PRECISIONS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"unknown {name} {getattr(self, name)!r}; allowed: {', '.join(allowed)}")
        if self.threads > MAX_THREADS:
            raise ValueError(f"threads must be at most {MAX_THREADS} (torch threads per learner process), "
                             f"got {self.threads}")
        self.checkpoint_every = parse_frames(self.checkpoint_every, "checkpoint_every")
        parse_compute(self.compute), parse_delays(self.delays)  # --mode sim's models: refused before a run starts
        if self.envs_per_learner > MAX_ENVS_PER_LEARNER:
            shape = (f"--agents {self.agents} x --envs-per-agent {self.envs_per_agent}" if self.algo == "a2c"
                     else f"--envs-per-agent {self.envs_per_agent}")
            raise ValueError(f"{shape} gives a learner {self.envs_per_learner} simulators; a learner steps at "
                             f"most {MAX_ENVS_PER_LEARNER}")
        if self.restart_failed and (self.mode != "async" or self.algo != "gala"):
            raise ValueError(f"restart_failed={self.restart_failed} applies to GALA in --mode async only (got "
                             f"--mode {self.mode} --algo {self.algo}); in --mode dist restart the rank "
                             "yourself with --rejoin")

    @property
    def learners(self) -> int:
        """Learner processes: ``agents`` for GALA, one for the A2C baseline."""
        return 1 if self.algo == "a2c" else self.agents

    @property
    def envs_per_learner(self) -> int:
        return self.agents * self.envs_per_agent if self.algo == "a2c" else self.envs_per_agent

    def graph(self):
        """The gossip graph of ``topology`` over ``agents`` learners (seeded for the random ones)."""
        from galasim import topology

        return topology.build(self.topology, self.agents, peers=self.peers, seed=self.seed)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["sync_freq"] = "inf" if math.isinf(self.sync_freq) else self.sync_freq
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            import difflib

            hints = [f"{k!r} (did you mean {difflib.get_close_matches(k, names, 1)[0]!r}?)"
                     if difflib.get_close_matches(k, names, 1) else repr(k) for k in unknown]
            raise ValueError(f"unknown config key(s) {', '.join(hints)}; allowed: {', '.join(sorted(names))}")
        return cls(**data)


def _finite_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def parse_frames(value: Any, name: str = "frames") -> int:
    """``10M``, ``2.5m``, ``500k``, ``1e6`` or an integer: a number of frames (>= 1).

    Examples
    --------
    >>> parse_frames("10M"), parse_frames("500k"), parse_frames(1e6)
    (10000000, 500000, 1000000)
    """
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a positive number of frames like 10M, 500k or 20000, got {value!r}")
    if isinstance(value, str):
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([kmg]?)\s*", value.lower())
        if not match:
            raise ValueError(f"{name} must be a positive number of frames like 10M, 500k or 20000, got {value!r}")
        value = float(match.group(1)) * {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[match.group(2)]
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 1 or value != int(value):
        raise ValueError(f"{name} must be a positive number of frames like 10M, 500k or 20000, got {value!r}")
    if value > MAX_FRAMES:
        raise ValueError(f"{name} must be at most 1e12 frames (116 days at 100,000 frames/s), got {value!r}")
    return int(value)


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML (``.yaml``/``.yml``) or TOML (``.toml``) file of TrainConfig fields (``-`` or ``_``)."""
    data = read_settings_file(path, "config file")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def given_settings(preset: str | None = None, config_file: str | Path | None = None,
                   **overrides: Any) -> dict[str, Any]:
    """The settings that ``preset`` < ``config_file`` < ``overrides`` set (``None`` = unset), defaults left out."""
    data: dict[str, Any] = {}
    if preset is not None:
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; allowed: {', '.join(PRESETS)}")
        data.update(PRESETS[preset])
    if config_file is not None:
        data.update(load_config_file(config_file))
    data.update({k: v for k, v in overrides.items() if v is not None})
    return data


def make_config(preset: str | None = None, config_file: str | Path | None = None,
                **overrides: Any) -> TrainConfig:
    """A :class:`TrainConfig` from defaults < preset < config file < overrides (``None`` = unset)."""
    return TrainConfig.from_dict(given_settings(preset, config_file, **overrides))
