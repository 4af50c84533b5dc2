"""Argument checks and size guards shared by the API, the sweep grids and the command line.

One wording everywhere: ``NAME must be WHAT, got VALUE``. A value of the wrong kind raises
``TypeError`` and a value of the right kind outside what is allowed raises ``ValueError`` (as in
networkx and scikit-learn). Integers that reach the C scheduler are bounded by its C types (int64,
seeds uint64), so an out-of-range value is a ``ValueError`` naming the range here instead of an
``OverflowError`` deep inside an engine, or a results row that cannot be stored.

The size guards turn an absurd request (a graph of a trillion agents, a run of a trillion events)
into an immediate ``ValueError`` that names the estimate and the limit, instead of minutes of work
that end in swapping or a kill. The estimates are lower bounds, so no feasible request is refused.

This module imports nothing heavy: the command line uses it to build ``--help``.
"""
from __future__ import annotations

import math
import numbers
import os
from typing import Any

INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1
#: The scheduler keeps agent counts, dimensions and sample counts in C ints.
INT32_MAX = 2**31 - 1
SEED_MAX = UINT64_MAX

# The certificate keeps a dense (n + E)^2 product of the realised maps: beyond this many rows
# certificate="auto" skips it (memory and BLAS time grow as (n + E)^2 and (n + E)^3).
CERTIFICATE_AUTO_MAX_ROWS = 512
# Up to this many rows "auto" also keeps the window of exact columns (certificate="exact"): about
# 15x a Dobrushin-only run there (1.5 s for a 16-agent ring over 5,000 iterations), and it is what
# brings the default study's 16-agent cells within 10x of the empirical distance.
CERTIFICATE_AUTO_EXACT_MAX_ROWS = 32

#: More events than this (about 15 minutes of the Cython scheduler at 10 M events/s) is refused.
MAX_EVENTS = 10**10
#: A sweep grid of more cells than this is refused (every cell is a process-pool task and a row).
MAX_CELLS = 10**6

_POWERS = {INT64_MAX: "2**63 - 1", UINT64_MAX: "2**64 - 1", INT32_MAX: "2**31 - 1"}


def _bound(value: int) -> str:
    return _POWERS.get(value, str(value))


def integer(name: str, value: Any, low: int, high: int = INT64_MAX) -> int:
    """``value`` as an int in ``low..high``: TypeError for a non-integer, ValueError outside.

    Examples
    --------
    >>> integer("agents", 8, 2)
    8
    >>> integer("iterations", 2**63, 1)
    Traceback (most recent call last):
        ...
    ValueError: iterations must be an integer from 1 to 2**63 - 1, got 9223372036854775808
    """
    message = f"{name} must be an integer from {_bound(low)} to {_bound(high)}, got {value!r}"
    # bool is an Integral, but agents=True is surely a mistake.
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(message)
    if not low <= value <= high:
        raise ValueError(message)
    return int(value)


def parse_integer(name: str, value: Any, low: int, high: int = INT64_MAX) -> int:
    """:func:`integer` for command-line words and grid files: also ``"8"``, ``"1e3"`` and ``8.0``.

    Every failure is a ``ValueError``: text is the right kind of input here.

    Examples
    --------
    >>> parse_integer("seeds", "1e3", 1), parse_integer("dim", 8.0, 1)
    (1000, 8)
    >>> parse_integer("sync_freq", "1e30", 0)
    Traceback (most recent call last):
        ...
    ValueError: sync_freq must be an integer from 0 to 2**63 - 1, got '1e30'
    """
    number = value
    if isinstance(value, str):
        text = value.strip()
        try:
            number = int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                number = None
    if isinstance(number, float) and number.is_integer():
        number = int(number)
    try:
        integer(name, number, low, high)
    except (TypeError, ValueError):
        raise ValueError(
            f"{name} must be an integer from {_bound(low)} to {_bound(high)}, got {value!r}"
        ) from None
    return number


def positive(name: str, value: Any) -> float:
    """``value`` as a finite float > 0: TypeError for a non-number, ValueError otherwise.

    Examples
    --------
    >>> positive("lr", 0.5)
    0.5
    >>> positive("lr", "0.5")
    Traceback (most recent call last):
        ...
    TypeError: lr must be a finite number > 0, got '0.5'
    """
    message = f"{name} must be a finite number > 0, got {value!r}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(message)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(message)
    return float(value)


def choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    """``value`` if it is one of ``allowed``, else a ValueError listing them.

    Examples
    --------
    >>> choice("engine", "fortran", ("cython", "reference"))
    Traceback (most recent call last):
        ...
    ValueError: engine must be one of cython, reference, got 'fortran'
    """
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def workers(name: str, value: Any) -> int:
    """A worker-process count: -1 (one per core) or 1 up to 4 per core (more only thrash).

    Examples
    --------
    >>> workers("--jobs", "-1")
    -1
    >>> workers("--jobs", 0)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    ValueError: --jobs must be -1 (one per core) or an integer from 1 to ... (4 per core), got 0
    """
    most = 4 * (os.cpu_count() or 1)
    try:
        count = parse_integer(name, value, -1, most)
    except ValueError:
        count = 0
    if count == 0:
        raise ValueError(
            f"{name} must be -1 (one per core) or an integer from 1 to {most} (4 per core), "
            f"got {value!r}"
        )
    return count


# --------------------------------------------------------------------------------------------------
# size guards


def memory_limit() -> int:
    """Bytes one request may plan to use: half of this machine's (or container's) memory."""
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    try:  # a cgroup v2 limit (containers, batch jobs) is the memory actually available
        with open("/sys/fs/cgroup/memory.max") as fh:
            text = fh.read().strip()
        if text.isdigit():
            total = min(total, int(text))
    except OSError:
        pass
    return total // 2


def format_bytes(count: float) -> str:
    """``count`` bytes in binary units, e.g. ``'23.9 GiB'``.

    Examples
    --------
    >>> format_bytes(1536), format_bytes(2**50 * 3)
    ('1.5 KiB', '3 PiB')
    """
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if count < 1024:
            return f"{count:.3g} {unit}"
        count /= 1024
    return f"{count:.3g} PiB"


def check_memory(what: str, needed: float, advice: str) -> None:
    """Refuse a request whose memory estimate exceeds :func:`memory_limit`, naming both.

    Examples
    --------
    >>> check_memory("a tiny table", 1024, "use fewer rows")
    """
    limit = memory_limit()
    if needed > limit:
        raise ValueError(
            f"{what} needs about {format_bytes(needed)} of memory, more than the limit of "
            f"{format_bytes(limit)} (half of this machine's memory); {advice}"
        )


def check_events(what: str, events: float, advice: str) -> None:
    """Refuse a run estimated at more than :data:`MAX_EVENTS` events, naming both.

    Examples
    --------
    >>> check_events("simulate", 10**12, "use fewer iterations")
    Traceback (most recent call last):
        ...
    ValueError: simulate would process about 1e+12 events, more than the limit of 1e+10; use fewer iterations
    """
    if events > MAX_EVENTS:
        raise ValueError(
            f"{what} would process about {events:.3g} events, more than the limit of "
            f"{MAX_EVENTS:.3g}; {advice}"
        )


def check_sync_freq(value: Any, bound: float) -> None:
    """Refuse a finite staleness bound ``bound`` (parsed from ``value``) beyond the C int64 range.

    Examples
    --------
    >>> check_sync_freq("1e30", 1e30)
    Traceback (most recent call last):
        ...
    ValueError: sync_freq must be an integer from 0 to 2**63 - 1, or inf, got '1e30'
    """
    if math.isfinite(bound) and bound > INT64_MAX:
        raise ValueError(f"sync_freq must be an integer from 0 to 2**63 - 1, or inf, got {value!r}")
