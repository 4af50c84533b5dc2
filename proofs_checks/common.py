"""What every claim check shares: the result type, tables as text and Markdown, atomic files, plots.

A check module ``proofs_checks.cN_*`` exposes ``CLAIM`` (one sentence), ``run(quick, seed) ->
CheckResult`` and ``main()``; :func:`check_main` is that ``main`` (print the table, write plots if
``--out`` is given, exit 1 when the claim fails).
"""
from __future__ import annotations

import argparse
import functools
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from galasim.atomic import atomic_savefig, atomic_write_text

#: Relative slack for comparing two bounds computed in floating point (the same as
#: ``galasim.simulate``'s own ``bound_holds`` test); never used to excuse a genuine violation.
REL_TOL = 1e-9
ABS_TOL = 1e-12


@dataclass
class Plot:
    """A figure a check can draw: ``build()`` returns a matplotlib Figure, saved as ``filename``."""

    filename: str
    build: Callable[[], Any]
    caption: str = ""


@dataclass
class CheckResult:
    """The outcome of one claim check.

    Attributes
    ----------
    name : str
        ``"C1"`` ... ``"C5"``.
    claim : str
        The claim in one sentence.
    passed : bool
        Whether every asserted row held (and the check was not vacuous).
    table : pandas.DataFrame
        The summary table printed and put in the report.
    plots : list
        :class:`Plot` builders (drawn by :func:`save_plots`) or paths of PNGs already written.
    notes : list of str
        What was run, what is asserted and what is only reported, and why.
    details : pandas.DataFrame, optional
        One row per run when the summary table aggregates them (written as CSV by the report).
    failures : list of str
        One line per failed row or condition (empty when ``passed``).
    seconds : float
        Wall time of ``run``.
    extra_tables : list of (title, DataFrame)
        Further tables shown after the main one.
    """

    name: str
    claim: str
    passed: bool
    table: pd.DataFrame
    plots: list = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    details: pd.DataFrame | None = None
    failures: list[str] = field(default_factory=list)
    seconds: float = math.nan
    extra_tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)

    @property
    def status(self) -> str:
        return "PASS" if self.passed else "FAIL"


# --------------------------------------------------------------------------------------------------
# numbers


def leq(a: float, b: float, rel: float = REL_TOL, atol: float = ABS_TOL) -> bool:
    """``a <= b`` up to floating-point slack: ``a <= b (1 + rel) + atol`` (inf and nan aware)."""
    if math.isnan(a) or math.isnan(b):
        return False
    if math.isinf(b) and b > 0:
        return True
    return bool(a <= b * (1.0 + rel) + atol)


def is_true(value: Any) -> bool:
    """Whether a table cell is the boolean True (Python or NumPy), not merely truthy."""
    return isinstance(value, (bool, np.bool_)) and bool(value)


def is_false(value: Any) -> bool:
    """Whether a table cell is the boolean False (Python or NumPy); None and NaN are not."""
    return isinstance(value, (bool, np.bool_)) and not bool(value)


def is_missing(value: Any) -> bool:
    """Whether a table cell is None or NaN (``bound_holds`` when nothing is claimed)."""
    return value is None or (isinstance(value, (float, np.floating)) and math.isnan(value))


def rel_dev(actual: np.ndarray | float, expected: np.ndarray | float) -> float:
    """``max |actual - expected| / max |expected|`` (0 when both vanish, inf on a sign of life in 0)."""
    actual = np.atleast_1d(np.asarray(actual, dtype=float))
    expected = np.atleast_1d(np.asarray(expected, dtype=float))
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    diff = float(np.max(np.abs(actual - expected))) if expected.size else 0.0
    if scale == 0.0:
        return 0.0 if diff == 0.0 else math.inf
    return diff / scale


def timed(fn: Callable[..., CheckResult]) -> Callable[..., CheckResult]:
    """Decorate a check's ``run`` so that the result records its wall time."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs) -> CheckResult:
        started = time.perf_counter()
        result = fn(*args, **kwargs)
        result.seconds = time.perf_counter() - started
        return result

    return wrapper


def parallel_map(fn: Callable, items: Sequence, parallel: bool) -> list:
    """``[fn(*item) for item in items]``, on every core (joblib) when ``parallel`` and worth it.

    Quick mode runs serially (starting worker processes would cost more than it saves, and tests
    monkeypatch functions that workers would not see); full mode spreads independent simulations.
    """
    if not parallel or len(items) < 16 or (os.cpu_count() or 1) < 2:
        return [fn(*item) for item in items]
    from joblib import Parallel, delayed

    return list(Parallel(n_jobs=-1, batch_size="auto")(delayed(fn)(*item) for item in items))


# --------------------------------------------------------------------------------------------------
# tables


def format_value(value: Any, digits: int = 4) -> str:
    """One cell as text: floats with ``digits`` significant digits, booleans as yes/no."""
    if value is None:
        return "-"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return "-"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3):
            return f"{value:.{max(1, digits - 1)}e}"
        return f"{value:.{digits}g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(v, digits) for v in value)
    return str(value)


def _cells(table: pd.DataFrame, digits: int) -> tuple[list[str], list[list[str]]]:
    header = [str(c) for c in table.columns]
    rows = [[format_value(v, digits) for v in row] for row in table.itertuples(index=False, name=None)]
    return header, rows


def text_table(table: pd.DataFrame, digits: int = 4) -> str:
    """A plain-text table (columns aligned) for the terminal."""
    header, rows = _cells(table, digits)
    widths = [max([len(h)] + [len(r[k]) for r in rows]) for k, h in enumerate(header)]
    numeric = [
        all(_looks_numeric(r[k]) for r in rows) and bool(rows) for k in range(len(header))
    ]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(cells, widths, numeric)).rstrip()

    out = [line(header), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in rows]
    return "\n".join(out)


def _looks_numeric(text: str) -> bool:
    if text in ("-", "inf", "-inf"):
        return True
    try:
        float(text)
    except ValueError:
        return False
    return True


def markdown_table(table: pd.DataFrame, digits: int = 4) -> str:
    """A GitHub-flavoured Markdown table (``DataFrame.to_markdown`` needs tabulate; this does not).

    Examples
    --------
    >>> print(markdown_table(pd.DataFrame({"a": [1, 2], "b": [0.5, True]})))
    | a | b |
    |---:|---|
    | 1 | 0.5 |
    | 2 | yes |
    """
    header, rows = _cells(table, digits)
    numeric = [all(_looks_numeric(r[k]) for r in rows) and bool(rows) for k in range(len(header))]

    def esc(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    out = ["| " + " | ".join(esc(h) for h in header) + " |"]
    out.append("|" + "|".join("---:" if num else "---" for num in numeric) + "|")
    out += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


# --------------------------------------------------------------------------------------------------
# files




def use_agg() -> None:
    """Select matplotlib's non-interactive Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=True)


def save_plots(result: CheckResult, out_dir: str | os.PathLike) -> list[tuple[Path, str]]:
    """Draw ``result``'s plots into ``out_dir``; returns ``(path, caption)`` per plot.

    A plot that fails to draw is reported in ``result.notes`` instead of aborting the report.
    """
    use_agg()
    out_dir = Path(out_dir)
    saved = []
    for plot in result.plots:
        if isinstance(plot, Plot):
            try:
                saved.append((atomic_savefig(plot.build(), out_dir / plot.filename), plot.caption))
            except Exception as exc:  # a broken figure must not hide the verdict
                result.notes.append(f"plot {plot.filename} could not be drawn: {type(exc).__name__}: {exc}")
        else:
            saved.append((Path(plot), ""))
    return saved


# --------------------------------------------------------------------------------------------------
# the standalone entry point of a check module


def render(result: CheckResult) -> str:
    """The terminal rendering of a result: claim, table, notes, verdict."""
    lines = [f"{result.name}: {result.claim}", "", text_table(result.table), ""]
    for title, extra in result.extra_tables:
        lines += [f"{title}:", "", text_table(extra), ""]
    lines += [f"note: {n}" for n in result.notes]
    lines += [f"FAILED: {f}" for f in result.failures]
    seconds = "" if math.isnan(result.seconds) else f" ({result.seconds:.1f} s)"
    lines.append(f"{result.name} {result.status}{seconds}")
    return "\n".join(lines)


def check_main(run: Callable[..., CheckResult], name: str, claim: str, argv: list[str] | None = None) -> int:
    """``python -m proofs_checks.cN_...``: run the check, print its table, exit 1 if it fails."""
    module = sys.modules.get(getattr(run, "__module__", ""))
    stem = Path(module.__file__).stem if getattr(module, "__file__", None) else name
    parser = argparse.ArgumentParser(
        prog=f"python -m proofs_checks.{stem}",
        description=f"{name}: {claim}",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="small configuration (a few seconds)")
    parser.add_argument("--seed", type=int, default=0, help="base seed of every simulation")
    parser.add_argument("--out", type=Path, default=None, help="also draw the plots into this folder")
    args = parser.parse_args(argv)
    result = run(quick=args.quick, seed=args.seed)
    if args.out is not None:
        for path, _ in save_plots(result, args.out):
            result.notes.append(f"plot written: {path}")
        if result.details is not None:
            atomic_write_text(args.out / f"{name}_runs.csv", result.details.to_csv(index=False))
    print(render(result))
    return 0 if result.passed else 1


# --------------------------------------------------------------------------------------------------
# the Markdown report of `galasim check`


def failed_result(name: str, claim: str, error: BaseException) -> CheckResult:
    """A FAIL result for a check that raised instead of returning (the report still gets written)."""
    import traceback

    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    return CheckResult(
        name, claim, False, pd.DataFrame({"error": [f"{type(error).__name__}: {error}"]}),
        notes=["The check raised an exception:\n" + text.rstrip()],
        failures=[f"the check raised {type(error).__name__}: {error}"],
    )


def write_report(results: list[CheckResult], out_dir: str | os.PathLike, *, quick: bool, seed: int) -> Path:
    """Write ``out_dir/report.md`` with every claim's verdict, table, notes and plots.

    The plots are drawn into ``out_dir`` as PNGs and each run-level table as ``<name>_runs.csv``;
    every file is written atomically.
    """
    import datetime

    import galasim

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    overall = all(r.passed for r in results)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# galasim check: the claims of the GALA theory, checked",
        "",
        f"**Overall: {'PASS' if overall else 'FAIL'}** ({sum(r.passed for r in results)}/{len(results)} "
        f"claims hold). galasim {galasim.__version__}, {'quick' if quick else 'full'} mode, seed {seed}, "
        f"{stamp}.",
        "",
        "The theorem (ARCHITECTURE.md): under (A1) bounded updates, (A2) weights >= beta, (A3) "
        "B-strong connectivity and (A4) delays and staleness <= tau, every agent stays within "
        "epsilon = alpha L C / (1 - q) of the mean. galasim reports three numbers per run: the "
        "empirical distance, a data-dependent certificate and the closed-form epsilon.",
        "",
        markdown_table(pd.DataFrame([
            {"claim": f"[{r.name}](#{r.name.lower()})", "status": r.status,
             "seconds": round(r.seconds, 1) if not math.isnan(r.seconds) else math.nan,
             "statement": r.claim}
            for r in results
        ])),
        "",
    ]
    for result in results:
        plots = save_plots(result, out_dir)
        lines += [f"## {result.name}", "", f"**{result.status}**: {result.claim}", ""]
        if result.failures:
            lines += ["Failures:", ""] + [f"* {f}" for f in result.failures] + [""]
        lines += [markdown_table(result.table), ""]
        if result.details is not None:
            name = f"{result.name}_runs.csv"
            atomic_write_text(out_dir / name, result.details.to_csv(index=False))
            lines += [f"One row per run: [{name}]({name}).", ""]
        for title, extra in result.extra_tables:
            lines += [f"**{title}**", "", markdown_table(extra), ""]
        for note in result.notes:
            head, _, body = note.partition("\n")
            lines.append(f"* {head}")
            if body.strip():  # multi-line notes (a traceback) keep their layout
                lines += ["", "```", body.strip("\n"), "```", ""]
        lines.append("")
        for path, caption in plots:
            lines += [f"![{path.stem}]({path.name})", ""] + ([f"*{caption}*", ""] if caption else [])
    return atomic_write_text(out_dir / "report.md", "\n".join(lines).rstrip() + "\n")
