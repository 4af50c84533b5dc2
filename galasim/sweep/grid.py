"""Sweep grids: which ``simulate()`` parameters take which values, expanded into cells with ids.

A :class:`Grid` maps parameter names to value lists and carries the seeds; its cells are the
Cartesian product of the lists times the seeds. Every value is validated and put into one canonical
form here, in the parent process, so that a typo fails before any cell runs and so that a cell's id
(a hash of its full configuration) does not depend on how a value was spelled (``8``, ``"8"``,
``8.0``). Model strings are checked by the simulator's own parsers: the grammar lives in one place.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from galasim._settings_file import read_settings_file
from galasim._validation import (
    CERTIFICATE_AUTO_EXACT_MAX_ROWS,
    CERTIFICATE_AUTO_MAX_ROWS,
    INT32_MAX,
    INT64_MAX,
    MAX_CELLS,
    SEED_MAX,
    check_sync_freq,
    choice,
    parse_integer,
)
from galasim.gossip.protocol import PROTOCOLS

# Seeds of a grid that names none (a count: seeds 0..DEFAULT_SEEDS-1).
DEFAULT_SEEDS = 3

# The validators below import the simulator's modules when first called, not here: the CLI reads
# this table to build `galasim sweep --help`, which should not wait for pandas, networkx and the
# simulator.


@dataclass(frozen=True)
class Parameter:
    """One sweepable keyword argument of ``galasim.simulate``.

    Attributes
    ----------
    name : str
        The keyword, also the results column (except ``certificate``, see :data:`COLUMNS`).
    default : Any
        ``simulate()``'s default; written into every cell so that ids do not depend on whether a
        default was spelled out.
    coerce : Callable[[Any], Any]
        Turns a CLI word or a grid-file value into the canonical JSON value, or raises
        ``ValueError``.
    doc : str
        One line of help for the CLI.
    """

    name: str
    default: Any
    coerce: Callable[[Any], Any]
    doc: str


def _integer(name: str, minimum: int, maximum: int = INT64_MAX) -> Callable[[Any], int]:
    return lambda value: parse_integer(name, value, minimum, maximum)


def _number(name: str, text: Any) -> float:
    """A float from a number or numeric text (``nan`` and ``inf`` included), else ``ValueError``."""
    if isinstance(text, bool):
        raise ValueError(f"{name} must be a number, got {text!r}")
    try:
        return float(text)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {text!r}") from None


def _positive(name: str) -> Callable[[Any], float]:
    def coerce(value: Any) -> float:
        number = _number(name, value)
        if not (math.isfinite(number) and number > 0):
            raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        return number

    return coerce


def _rate(name: str) -> Callable[[Any], float]:
    def coerce(value: Any) -> float:
        number = _number(name, value)
        if not (math.isfinite(number) and number >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        return number

    return coerce


def _text(name: str) -> Callable[[Any], str]:
    def coerce(value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{name} must be a non-empty string, got {value!r}")
        return value.strip()

    return coerce


def _topology(value: Any) -> str:
    from galasim.topology import NAMES

    return choice("topology", _text("topology")(value).lower(), NAMES)


def _protocol(value: Any) -> str:
    from galasim.gossip import protocol

    return protocol(_text("protocol")(value)).name


def _updates(value: Any) -> str:
    from galasim.sim.models import parse_updates

    return parse_updates(_text("updates")(value)).kind


def _model(kind: str) -> Callable[[Any], float | str]:
    """Canonical form of a model argument, validated by the simulator's own parser (one grammar).

    A number (or numeric text) is kept as a float mean, so ``2``, ``"2"`` and ``2.0`` are one cell;
    anything else is a model string such as ``"uniform:0.5,1.5"``.
    """

    def coerce(value: Any) -> float | str:
        from galasim.sim import models

        canonical = float(value) if _is_number(value) else _text(kind)(value)
        getattr(models, f"parse_{kind}")(canonical)
        return canonical

    return coerce


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _faults(value: Any) -> str | None:
    from galasim.sim.models import parse_faults

    if value is None:
        return None
    spec = _text("faults")(value)
    parse_faults(spec)
    return None if spec.lower() == "none" else spec


def _sync_freq(value: Any) -> int | str | None:
    # None (or "default") leaves the protocol's default. "inf", "none" and "unbounded" mean
    # unbounded staleness (gossip.parse_sync_freq), kept as the text "inf": JSON, hence a cell id,
    # has no infinity.
    from galasim.gossip import parse_sync_freq

    if value is None or (isinstance(value, str) and value.strip().lower() == "default"):
        return None
    bound = parse_sync_freq(value)
    check_sync_freq(value, bound)
    return "inf" if math.isinf(bound) else bound


def _certificate(value: Any) -> bool | str:
    if isinstance(value, bool):
        return value
    words = {"true": True, "false": False, "auto": "auto", "exact": "exact"}
    word = value.strip().lower() if isinstance(value, str) else None
    if word in words:
        return words[word]
    raise ValueError(f"certificate must be true, false, auto or exact, got {value!r}")


def _engine(value: Any) -> str:
    from galasim.sim.api import ENGINES

    return choice("engine", _text("engine")(value).lower(), ENGINES)


PARAMETERS: dict[str, Parameter] = {
    p.name: p
    for p in (
        Parameter(
            "topology", "ring", _topology,
            "communication graph: ring, ring-undirected, torus, hypercube, complete, exponential, "
            "one-peer-exponential, random-regular, erdos-renyi",
        ),
        Parameter(
            "protocol", "gala", _protocol,
            f"protocol: {', '.join(PROTOCOLS)} (gala is the paper's; gala-resend galasim's "
            "deadlock-free extension)",
        ),
        Parameter("agents", 8, _integer("agents", 2), "number of agents n"),
        Parameter("peers", 1, _integer("peers", 1), "peers per agent of ring and ring-undirected"),
        Parameter("dim", 8, _integer("dim", 1, INT32_MAX), "dimension d of each agent's state"),
        Parameter("iterations", 1000, _integer("iterations", 1), "local updates per agent"),
        Parameter("lr", 0.01, _positive("lr"), "learning rate alpha (> 0)"),
        Parameter("L", 1.0, _positive("L"), "bound on the update norm: ||delta|| <= alpha L (> 0)"),
        Parameter(
            "updates", "two-camp", _updates,
            "surrogate updates: two-camp, away-from-mean, random, quadratic",
        ),
        Parameter(
            "compute", "exponential:1", _model("compute"),
            "compute time: a mean, or constant:C, exponential:MEAN, uniform:LO,HI, "
            "lognormal:MEAN,SIGMA, pareto:MEAN,ALPHA, stragglers:FRACTION,SLOWDOWN",
        ),
        Parameter(
            "delays", 0.0, _model("delays"),
            "message delay, in mean compute times: a mean (exponential; 0 = none), or constant:C, "
            "exponential:MEAN, uniform:LO,HI, lognormal:MEAN,SIGMA, pareto:MEAN,ALPHA, per-edge",
        ),
        Parameter(
            "sync_freq", None, _sync_freq,
            "GALA staleness bound: an integer >= 0 (0 = always wait), inf (never wait), or default "
            "(the protocol's own: 4 for gala, 0 for sync-gossip)",
        ),
        Parameter(
            "faults", None, _faults,
            "faults: none (the default), drop:P, crash:AGENT@TIME, link:SRC->DST@TIME, "
            "repair:TIMEOUT, rejoin:AGENT@TIME, crash-rate:RATE[,DOWNTIME], several joined by +",
        ),
        Parameter(
            "crash_rate", 0.0, _rate("crash_rate"),
            "random crashes per agent and time unit (0: none); each crashed agent rejoins after the "
            "default downtime; add --faults repair:TIMEOUT to repair the topology",
        ),
        Parameter(
            "certificate", "auto", _certificate,
            "the data-dependent certificate: true (Dobrushin pieces), exact (adds a window of exact "
            "columns: tighter, 15-40x slower), false, or auto (exact when n + edges <= "
            f"{CERTIFICATE_AUTO_EXACT_MAX_ROWS}, true when <= {CERTIFICATE_AUTO_MAX_ROWS}, else false)",
        ),
        Parameter("engine", "cython", _engine, "simulator: cython, or the pure-Python reference"),
    )
}

# Results columns of the parameters. The summary has a number called `certificate` (the bound), so
# the parameter of that name (whether to track it) gets another column name.
COLUMNS: dict[str, str] = {name: name for name in PARAMETERS} | {
    "certificate": "certificate_mode",
    "seed": "seed",
}


def split_list(text: str) -> list[str]:
    """Split a command-line list into values, keeping the commas that belong to model strings.

    Rule: ``;`` always separates values. A ``,`` separates values too, except right after a
    ``name:args`` value, where the pieces that do not start with a letter are further arguments of
    that model. So ``0,1,uniform:0.5,1.5,lognormal:1,0.5`` is four values; write plain numbers
    before model strings (or use ``;``) when a number follows a model.

    Parameters
    ----------
    text : str
        One command-line word.

    Returns
    -------
    list of str
        The values, stripped of surrounding spaces.

    Raises
    ------
    ValueError
        If a value is empty (``"1,,2"``).

    Examples
    --------
    >>> split_list("0,0.5,uniform:0.5,1.5,pareto:1,2.5")
    ['0', '0.5', 'uniform:0.5,1.5', 'pareto:1,2.5']
    >>> split_list("none,drop:0.1,crash:3@500")
    ['none', 'drop:0.1', 'crash:3@500']
    >>> split_list("uniform:0.5,1.5;2")
    ['uniform:0.5,1.5', '2']
    """
    values: list[str] = []
    for chunk in text.split(";"):
        current: str | None = None
        for piece in (piece.strip() for piece in chunk.split(",")):
            if current is not None and ":" in current and piece and not piece[0].isalpha():
                current += "," + piece
                continue
            if current is not None:
                values.append(current)
            current = piece
        values.append(current)
    if any(not value for value in values):
        raise ValueError(f"empty value in list {text!r}")
    return values


# Parameters added after sweeps were stored: at their default they are left out of a cell's id,
# so the stored cells of older sweeps keep their ids (and are not run again).
LATER_PARAMETERS = ("crash_rate",)


def _identity(config: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items()
            if not (k in LATER_PARAMETERS and v == PARAMETERS[k].default)}


def cell_id(config: Mapping[str, Any]) -> str:
    """Stable id of a cell: the first 16 hex digits of the SHA-256 of its canonical JSON.

    Parameters
    ----------
    config : Mapping
        The full ``simulate()`` keyword arguments, seed included, in canonical form.

    Returns
    -------
    str
        16 lowercase hex digits; the same configuration gives the same id on every run and machine.

    Examples
    --------
    >>> cell_id({"delays": 1.0, "seed": 0}) == cell_id({"seed": 0, "delays": 1.0})
    True
    """
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Cell:
    """One unit of work: a full ``simulate()`` configuration (seed included) and its id."""

    cell_id: str
    config: dict[str, Any]


class Grid:
    """Value lists for some ``simulate()`` parameters, times a list of seeds.

    Parameters not named take ``simulate()``'s defaults (:data:`PARAMETERS`).

    Parameters
    ----------
    params : Mapping
        Parameter name (``sync-freq`` and ``sync_freq`` both accepted) to a list of values, or to a
        single value. Values may be command-line words (``"8"``) or native values (``8``).
    seeds : int or sequence of int
        A count *k* (seeds ``0..k-1``) or an explicit list of seeds.

    Raises
    ------
    ValueError
        Unknown parameter, no parameters, an empty or repeated value list, a bad value, bad seeds.

    Examples
    --------
    >>> grid = Grid({"delays": [0, "1", 2.5], "protocol": ["gala", "allreduce"]}, seeds=2)
    >>> len(grid)
    12
    >>> grid.params["delays"]
    (0.0, 1.0, 2.5)
    """

    def __init__(self, params: Mapping[str, Any], seeds: int | Sequence[int] = DEFAULT_SEEDS) -> None:
        if not params:
            raise ValueError(
                f"empty grid: name at least one parameter to sweep ({', '.join(PARAMETERS)})"
            )
        named = {key.replace("-", "_"): values for key, values in params.items()}
        unknown = sorted(named.keys() - PARAMETERS.keys())
        if unknown:
            raise ValueError(
                f"unknown parameter {', '.join(map(repr, unknown))}; "
                f"sweepable: {', '.join(PARAMETERS)}"
            )
        # In PARAMETERS order, so cells (and tables) nest the same way however the grid was written.
        self.params: dict[str, tuple[Any, ...]] = {
            name: _coerce_values(parameter, named[name])
            for name, parameter in PARAMETERS.items()
            if name in named
        }
        seeds = _coerce_seeds(seeds)
        configurations = math.prod(len(values) for values in self.params.values())
        count = seeds if isinstance(seeds, int) else len(seeds)
        if configurations * count > MAX_CELLS:  # checked before the seeds are listed
            raise ValueError(
                f"the grid has {configurations * count} cells ({configurations} configurations x "
                f"{count} seeds), more than the limit of {MAX_CELLS}; sweep fewer values or seeds"
            )
        self.seeds: tuple[int, ...] = tuple(range(seeds)) if isinstance(seeds, int) else seeds

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> Grid:
        """Build a grid from one mapping whose optional ``seeds`` key holds the seeds.

        Examples
        --------
        >>> Grid.from_mapping({"agents": [4, 8], "seeds": [7]}).seeds
        (7,)
        """
        params = {key: value for key, value in mapping.items() if key != "seeds"}
        return cls(params, mapping["seeds"]) if "seeds" in mapping else cls(params)

    def to_mapping(self) -> dict[str, Any]:
        """The grid as a plain mapping (``seeds`` included) that :meth:`from_mapping` accepts.

        Examples
        --------
        >>> Grid({"agents": 8}, seeds=2).to_mapping()
        {'agents': [8], 'seeds': [0, 1]}
        """
        return {name: list(values) for name, values in self.params.items()} | {
            "seeds": list(self.seeds)
        }

    def cells(self) -> list[Cell]:
        """All cells, seeds varying fastest, each with every parameter filled in.

        Examples
        --------
        >>> cell = Grid({"agents": [4]}, seeds=1).cells()[0]
        >>> cell.config["agents"], cell.config["topology"], cell.config["seed"]
        (4, 'ring', 0)
        """
        names = list(self.params)
        cells = []
        for values in itertools.product(*self.params.values()):
            base = {name: p.default for name, p in PARAMETERS.items()} | dict(zip(names, values))
            for seed in self.seeds:
                config = base | {"seed": seed}
                cells.append(Cell(cell_id(_identity(config)), config))
        return cells

    def __len__(self) -> int:
        return math.prod(len(values) for values in self.params.values()) * len(self.seeds)

    def __repr__(self) -> str:
        return f"Grid({self.params!r}, seeds={list(self.seeds)!r})"


def _coerce_values(parameter: Parameter, values: Any) -> tuple[Any, ...]:
    # A bare value (a string included) is a one-value list: grid files may say `iterations: 500`.
    listed = list(values) if isinstance(values, (list, tuple)) else [values]
    if not listed:
        raise ValueError(f"no values given for {parameter.name}")
    coerced = tuple(parameter.coerce(value) for value in listed)
    repeated = sorted(repr(v) for v, count in Counter(coerced).items() if count > 1)
    if repeated:
        raise ValueError(f"{parameter.name} lists {', '.join(repeated)} more than once")
    return coerced


def _coerce_seeds(seeds: Any) -> int | tuple[int, ...]:
    """The explicit seeds, or the count of seeds ``0..count-1`` (not listed yet: it may be huge)."""
    if isinstance(seeds, (list, tuple)):
        explicit = tuple(parse_integer("seeds", value, 0, SEED_MAX) for value in seeds)
        if not explicit or len(set(explicit)) != len(explicit):
            raise ValueError(f"seeds must be a non-empty list of distinct integers, got {seeds!r}")
        return explicit
    return parse_integer("seeds (a count)", seeds, 1)


def parse_seeds(text: str) -> int | list[str]:
    """Read ``--seeds``: a count (``5``: seeds 0..4) or, with commas, the seeds (``3,7`` or ``7,``).

    Examples
    --------
    >>> parse_seeds("5"), parse_seeds("3,7"), parse_seeds("7,")
    (5, ['3', '7'], ['7'])
    """
    if "," in text:
        return [piece.strip() for piece in text.split(",") if piece.strip()]
    return parse_integer("seeds (a count)", text, 1)


def read_grid_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML (``.yaml``, ``.yml``) or TOML (``.toml``) grid file for :class:`Grid`.

    Keys are parameter names (and ``seeds``); values are lists or single values.

    Parameters
    ----------
    path : str or Path
        The grid file.

    Returns
    -------
    dict
        The mapping, not yet validated (:meth:`Grid.from_mapping` does that).

    Raises
    ------
    ValueError
        Unknown suffix, a file that is missing, a folder, unreadable or not UTF-8 text, a syntax
        error, an empty file, or a top level that is not a mapping; the message names the file.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "grid.yaml"
    >>> _ = path.write_text("delays: [0, 1]\\nseeds: 2\\n")
    >>> read_grid_file(path)
    {'delays': [0, 1], 'seeds': 2}
    """
    mapping = read_settings_file(path, "grid file")
    if not mapping:
        raise ValueError(f"empty grid: grid file {path} names no parameters")
    return mapping
