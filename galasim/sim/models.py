"""Compute-time, delay, update and fault models, and the one string grammar that names them.

The same grammar is used by :func:`galasim.simulate`, ``galasim sweep`` and grid files::

    delays   = 0 | 2.0 | "exponential:2" | "constant:1" | "uniform:0.5,1.5"
               | "lognormal:1,0.5" | "pareto:1,2.5" | "per-edge" | "per-edge:constant"
    compute  = "constant:1" | "exponential:1" | "uniform:..." | "lognormal:..." | "pareto:..."
               | "stragglers:0.25,4"
    updates  = "two-camp" | "away-from-mean" | "random" | "quadratic" | callable
    faults   = None | "drop:0.1" | "crash:3@500" | "link:2->3@100" | "repair:2" | "rejoin:3@800"
               | "crash-rate:0.001" | "crash-rate:0.001,50" | several joined by "+"

Faults (``docs/simulation.md``, "Crash, repair, rejoin"): ``crash:A@T`` stops agent A at time T;
without ``repair`` the survivors stop waiting for it at once (a perfect failure detector), with
``repair:D`` they keep waiting until the crash is detected D time units later and then bypass it
(:mod:`galasim.gossip.repair`). ``rejoin:A@T`` restarts A with a live in-neighbour's parameters.
``crash-rate:R,DOWN`` crashes each agent at exponential times of rate R (while it has updates left)
and restarts it DOWN time units later (default :data:`DEFAULT_DOWNTIME`; ``inf``: never).

The first number of every distribution is its **mean** (``lognormal:mean,sigma`` with sigma the
standard deviation of the log; ``pareto:mean,alpha`` with alpha > 1 the tail index), except
``uniform:low,high`` and ``constant:value``.  Delays are in units of the mean compute time.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

# Distribution codes shared with the Cython scheduler and the reference simulator.
CONSTANT, EXPONENTIAL, UNIFORM, LOGNORMAL, PARETO = range(5)
DISTRIBUTIONS = {
    "constant": CONSTANT,
    "exponential": EXPONENTIAL,
    "uniform": UNIFORM,
    "lognormal": LOGNORMAL,
    "pareto": PARETO,
}
_ARITY = {"constant": 1, "exponential": 1, "uniform": 2, "lognormal": 2, "pareto": 2}

# Update-model codes shared with the engines.
TWO_CAMP, AWAY_FROM_MEAN, RANDOM, QUADRATIC, CALLBACK = range(5)
UPDATE_MODELS = {
    "two-camp": TWO_CAMP,
    "away-from-mean": AWAY_FROM_MEAN,
    "random": RANDOM,
    "quadratic": QUADRATIC,
    "callback": CALLBACK,
}


@dataclass(frozen=True)
class Distribution:
    """A non-negative random duration: ``kind`` in :data:`DISTRIBUTIONS`, two parameters.

    The engines receive ``(code, p1, p2)`` with the parameters already in sampling form:
    constant ``(value, 0)``, exponential ``(mean, 0)``, uniform ``(low, high)``,
    lognormal ``(mu, sigma)`` of the underlying normal, pareto ``(x_m, alpha)``.
    """

    kind: str
    args: tuple[float, ...]

    def __post_init__(self) -> None:
        if self.kind not in DISTRIBUTIONS:
            raise ValueError(
                f"unknown distribution {self.kind!r}; allowed: {', '.join(DISTRIBUTIONS)}"
            )
        if len(self.args) != _ARITY[self.kind]:
            raise ValueError(
                f"{self.kind} takes {_ARITY[self.kind]} number(s), got {len(self.args)}: {self}"
            )
        for value in self.args:
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{self}: parameters must be finite and >= 0, got {value!r}")
        if self.kind == "uniform" and self.args[0] > self.args[1]:
            raise ValueError(f"{self}: uniform needs low <= high")
        if self.kind in ("exponential", "lognormal", "pareto") and self.args[0] <= 0:
            raise ValueError(f"{self}: the mean must be > 0 (use 0 or 'constant:0' for none)")
        if self.kind == "pareto" and self.args[1] <= 1:
            raise ValueError(
                f"{self}: pareto needs a tail index alpha > 1 (alpha <= 1 has an infinite mean)"
            )

    def __str__(self) -> str:
        return f"{self.kind}:{','.join(f'{a:g}' for a in self.args)}"

    @property
    def mean(self) -> float:
        if self.kind == "uniform":
            return 0.5 * (self.args[0] + self.args[1])
        return self.args[0]

    @property
    def is_zero(self) -> bool:
        return self.kind == "constant" and self.args[0] == 0

    def engine_params(self) -> tuple[int, float, float]:
        """``(code, p1, p2)`` in the sampling form documented on the class."""
        code = DISTRIBUTIONS[self.kind]
        if self.kind == "lognormal":
            mean, sigma = self.args
            return code, math.log(mean) - 0.5 * sigma * sigma, sigma
        if self.kind == "pareto":
            mean, alpha = self.args
            return code, mean * (alpha - 1.0) / alpha, alpha
        return code, self.args[0], self.args[1] if len(self.args) > 1 else 0.0


@dataclass(frozen=True)
class ComputeModel:
    """Per-iteration compute time: a distribution, with a fraction of agents slowed down."""

    base: Distribution = Distribution("constant", (1.0,))
    straggler_fraction: float = 0.0
    slowdown: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.straggler_fraction <= 1.0:
            raise ValueError(
                f"straggler fraction must be in [0, 1], got {self.straggler_fraction!r}"
            )
        if not (math.isfinite(self.slowdown) and self.slowdown >= 1.0):
            raise ValueError(f"straggler slowdown must be a finite factor >= 1, got {self.slowdown!r}")
        if self.base.mean <= 0:
            raise ValueError(f"compute time {self.base} must have a positive mean")

    def __str__(self) -> str:
        if self.straggler_fraction:
            return f"stragglers:{self.straggler_fraction:g},{self.slowdown:g}"
        return str(self.base)

    def agent_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Multiplier of each agent's compute time: ``slowdown`` for round(f n) random agents."""
        factors = np.ones(n)
        count = int(round(self.straggler_fraction * n))
        if count:
            factors[rng.choice(n, size=count, replace=False)] = self.slowdown
        return factors


@dataclass(frozen=True)
class DelayModel:
    """Per-message delay; ``per_edge`` scales it by each edge's ``delay`` attribute (default 1)."""

    base: Distribution = Distribution("constant", (0.0,))
    per_edge: bool = False

    def __str__(self) -> str:
        if self.per_edge:
            return f"per-edge:{self.base.kind}"
        return "0" if self.base.is_zero else str(self.base)


# Downtime of a randomly crashed agent before it rejoins, in time units (crash-rate:R alone).
DEFAULT_DOWNTIME = 10.0


@dataclass(frozen=True)
class Faults:
    """Drops, crashes ``(agent, time)``, link removals ``(src, dst, time)``, and crash-and-repair.

    ``repair`` is the detection timeout D (None: a perfect detector and no repair), ``rejoins``
    the restarts ``(agent, time)``, ``crash_rate`` the rate of random crashes per agent and time
    unit (0: none) and ``downtime`` how long a randomly crashed agent stays down (inf: for ever).
    """

    drop: float = 0.0
    crashes: tuple[tuple[int, float], ...] = ()
    link_removals: tuple[tuple[int, int, float], ...] = ()
    repair: float | None = None
    rejoins: tuple[tuple[int, float], ...] = ()
    crash_rate: float = 0.0
    downtime: float = DEFAULT_DOWNTIME

    def __post_init__(self) -> None:
        if not (0.0 <= self.drop < 1.0):
            raise ValueError(f"drop probability must be in [0, 1), got {self.drop!r}")
        for agent, time in self.crashes:
            if agent < 0 or not time >= 0:
                raise ValueError(f"crash:{agent}@{time}: need an agent >= 0 and a time >= 0")
        for agent, time in self.rejoins:
            if agent < 0 or not (time >= 0 and math.isfinite(time)):
                raise ValueError(f"rejoin:{agent}@{time}: need an agent >= 0 and a finite time >= 0")
        for src, dst, time in self.link_removals:
            if src < 0 or dst < 0 or not time >= 0:
                raise ValueError(f"link:{src}->{dst}@{time}: need agents >= 0 and a time >= 0")
        if self.repair is not None and not (math.isfinite(self.repair) and self.repair >= 0):
            raise ValueError(f"repair:{self.repair} needs a finite detection timeout >= 0")
        if not (math.isfinite(self.crash_rate) and self.crash_rate >= 0):
            raise ValueError(f"crash-rate:{self.crash_rate} needs a finite rate >= 0 (crashes per agent and time unit)")
        if not self.downtime > 0:
            raise ValueError(f"crash-rate downtime must be > 0 (or inf: never rejoin), got {self.downtime!r}")

    @property
    def dynamic(self) -> bool:
        """Uses crash-and-repair or rejoin (only the GALA family of protocols supports them)."""
        return self.repair is not None or bool(self.rejoins) or self.crash_rate > 0

    def __str__(self) -> str:
        parts = [f"drop:{self.drop:g}"] if self.drop else []
        parts += [f"crash:{a}@{t:g}" for a, t in self.crashes]
        parts += [f"link:{s}->{d}@{t:g}" for s, d, t in self.link_removals]
        if self.crash_rate:
            parts.append(f"crash-rate:{self.crash_rate:g},{self.downtime:g}")
        parts += [f"rejoin:{a}@{t:g}" for a, t in self.rejoins]
        if self.repair is not None:
            parts.append(f"repair:{self.repair:g}")
        return "+".join(parts) or "none"


@dataclass(frozen=True)
class UpdateModel:
    """A surrogate local update: ``kind`` in :data:`UPDATE_MODELS`; ``callback(agent, k, x) -> delta``."""

    kind: str = "two-camp"
    callback: Callable[[int, int, np.ndarray], Any] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in UPDATE_MODELS:
            raise ValueError(
                f"unknown update model {self.kind!r}; allowed: {', '.join(UPDATE_MODELS)}"
            )
        if (self.kind == "callback") != (self.callback is not None):
            raise ValueError("the 'callback' update model needs a callable, and only it takes one")

    def __str__(self) -> str:
        return self.kind

    @property
    def code(self) -> int:
        return UPDATE_MODELS[self.kind]


def callback_delta(callback: Callable, agent: int, k: int, params: np.ndarray) -> np.ndarray:
    """Call a ``callback`` update model and check it returned ``len(params)`` finite numbers."""
    delta = np.asarray(callback(int(agent), int(k), params), dtype=np.float64).reshape(-1)
    if delta.shape[0] != params.shape[0] or not np.all(np.isfinite(delta)):
        raise ValueError(
            f"the update callback must return {params.shape[0]} finite numbers, got {delta!r} "
            f"(agent {agent}, iteration {k})"
        )
    return delta


def _split(spec: str) -> tuple[str, list[float]]:
    name, _, rest = spec.strip().partition(":")
    try:
        numbers = [float(x) for x in rest.split(",")] if rest.strip() else []
    except ValueError:
        raise ValueError(f"cannot read the numbers in {spec!r} (expected name:number,number)") from None
    return name.strip().lower(), numbers


def _number(spec: Any) -> float | None:
    if isinstance(spec, bool):
        return None
    if isinstance(spec, (int, float, np.integer, np.floating)):
        return float(spec)
    if isinstance(spec, str):
        try:
            return float(spec)
        except ValueError:
            return None
    return None


def parse_distribution(spec: str | float | Distribution, what: str) -> Distribution:
    """Read ``"name:args"`` (or a bare mean, meaning exponential) into a :class:`Distribution`."""
    if isinstance(spec, Distribution):
        return spec
    value = _number(spec)
    if value is not None:
        if math.isnan(value) or value < 0:
            raise ValueError(f"{what} must be >= 0 (a mean), got {spec!r}")
        if math.isinf(value):
            raise ValueError(f"{what} must be finite, got {spec!r}")
        return Distribution("constant", (0.0,)) if value == 0 else Distribution("exponential", (value,))
    if not isinstance(spec, str):
        raise ValueError(f"{what} must be a number or a string like 'exponential:1', got {spec!r}")
    name, numbers = _split(spec)
    if name not in DISTRIBUTIONS:
        raise ValueError(
            f"unknown {what} model {spec!r}; allowed: a mean, or one of "
            + ", ".join(f"{k}:..." for k in DISTRIBUTIONS)
        )
    return Distribution(name, tuple(numbers))


def parse_delays(spec: str | float | DelayModel | Distribution | None) -> DelayModel:
    """Parse the ``delays`` argument (see the module docstring)."""
    if spec is None:
        return DelayModel()
    if isinstance(spec, DelayModel):
        return spec
    if isinstance(spec, str) and spec.strip().lower().startswith("per-edge"):
        _, _, base = spec.partition(":")
        kind = base.strip().lower() or "exponential"
        if kind not in DISTRIBUTIONS or _ARITY[kind] != 1:
            raise ValueError(
                f"per-edge delays take a one-parameter distribution (constant or exponential), got {spec!r}"
            )
        return DelayModel(Distribution(kind, (1.0,)), per_edge=True)
    return DelayModel(parse_distribution(spec, "delay"))


def parse_compute(spec: str | float | ComputeModel | Distribution | None) -> ComputeModel:
    """Parse the ``compute`` argument; ``"stragglers:f,s"`` slows round(f n) agents s times."""
    if spec is None:
        return ComputeModel()
    if isinstance(spec, ComputeModel):
        return spec
    if isinstance(spec, str) and spec.strip().lower().startswith("stragglers"):
        _, numbers = _split(spec)
        if len(numbers) != 2:
            raise ValueError(f"stragglers takes a fraction and a slowdown, e.g. 'stragglers:0.25,4'; got {spec!r}")
        return ComputeModel(straggler_fraction=numbers[0], slowdown=numbers[1])
    base = parse_distribution(spec, "compute")
    if base.mean <= 0:
        raise ValueError(f"compute time must have a positive mean, got {spec!r}")
    return ComputeModel(base)


def parse_updates(spec: str | Callable | UpdateModel) -> UpdateModel:
    """Parse the ``updates`` argument: a model name or a Python callable ``(agent, k, x) -> delta``."""
    if isinstance(spec, UpdateModel):
        return spec
    if callable(spec):
        return UpdateModel("callback", spec)
    if not isinstance(spec, str):
        raise ValueError(f"updates must be a model name or a callable, got {spec!r}")
    return UpdateModel(spec.strip().lower())


_FAULT_FORMS = ("drop:P, crash:AGENT@TIME, link:SRC->DST@TIME, repair:TIMEOUT, rejoin:AGENT@TIME "
                "or crash-rate:RATE[,DOWNTIME]")


def _agent_at(arg: str) -> tuple[int, float]:
    agent, _, time = arg.partition("@")
    return int(agent), float(time)


def _once(part: str, seen: set[str], name: str) -> None:
    if name in seen:
        raise ValueError(f"fault {part!r}: {name} may appear once")
    seen.add(name)


def parse_faults(spec: str | Faults | None) -> Faults:
    """Parse the fault terms of the module docstring joined by ``+`` (e.g. ``crash:3@50+repair:2``)."""
    if spec is None or isinstance(spec, Faults):
        return spec or Faults()
    if not isinstance(spec, str):
        raise ValueError(f"faults must be a string like 'drop:0.1+crash:3@500', got {spec!r}")
    fields: dict[str, Any] = {"crashes": [], "link_removals": [], "rejoins": []}
    seen: set[str] = set()
    for part in filter(None, (p.strip() for p in spec.split("+"))):
        name, _, arg = part.partition(":")
        name = name.strip().lower()
        if name == "none":
            continue
        if name not in ("drop", "crash", "link", "repair", "rejoin", "crash-rate"):
            raise ValueError(f"unknown fault {part!r}; allowed: {_FAULT_FORMS}")
        try:
            if name == "drop":
                fields["drop"] = float(arg)
            elif name == "crash":
                fields["crashes"].append(_agent_at(arg))
            elif name == "rejoin":
                fields["rejoins"].append(_agent_at(arg))
            elif name == "repair":
                _once(part, seen, name)
                fields["repair"] = float(arg)
            elif name == "crash-rate":
                _once(part, seen, name)
                rate, _, down = arg.partition(",")
                fields["crash_rate"] = float(rate)
                if down.strip():
                    fields["downtime"] = float(down)
            else:
                edge, _, time = arg.partition("@")
                src, _, dst = edge.partition("->")
                fields["link_removals"].append((int(src), int(dst), float(time)))
        except ValueError as error:
            if "may appear once" in str(error):
                raise
            raise ValueError(f"cannot read fault {part!r}; expected {_FAULT_FORMS}") from None
    for key in ("crashes", "link_removals", "rejoins"):
        fields[key] = tuple(fields[key])
    return Faults(**fields)
