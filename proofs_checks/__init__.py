"""One executable check per claim of the GALA theory (ARCHITECTURE.md, "The ε-ball theorem").

Each module ``proofs_checks.cN_*`` has ``CLAIM`` (one sentence), ``run(quick=False, seed=0) ->
CheckResult`` and ``main()``: ``python -m proofs_checks.c2_bound --quick`` prints the claim's table
and exits 1 if the claim fails. ``galasim check`` runs them all and writes a Markdown report.

======  =========================================================================================
C1      products of the mixing matrices contract as ``mixing.contraction`` says (C q^(k-s))
C2      empirical <= certificate and empirical <= epsilon whenever (A1)-(A4) hold (grid and random
        configurations), epsilon's constants re-derived from the event log
C3      the empirical distance, the certificate and epsilon scale linearly in alpha and L
C4      necessity: broken assumptions make the distance grow without bound, and galasim says so
C5      efficiency: GALA completes more iterations per unit time than all-reduce
C6      deadlock: how often the paper's protocol deadlocks; galasim's gala-resend never does
C7      the Cython engine and the reference engine agree on every number and every event
======  =========================================================================================
"""
from __future__ import annotations

import importlib
from types import ModuleType

#: Claim name -> module, in the order ``galasim check`` runs them.
CHECKS = {
    "C1": "proofs_checks.c1_contraction",
    "C2": "proofs_checks.c2_bound",
    "C3": "proofs_checks.c3_scaling",
    "C4": "proofs_checks.c4_necessity",
    "C5": "proofs_checks.c5_efficiency",
    "C6": "proofs_checks.c6_deadlock",
    "C7": "proofs_checks.c7_engines",
}


def load(name: str) -> ModuleType:
    """The module of claim ``name`` (``"C1"`` ... ``"C7"``, case-insensitive)."""
    key = name.strip().upper()
    if key not in CHECKS:
        raise ValueError(f"unknown check {name!r}; choose from {', '.join(CHECKS)}")
    return importlib.import_module(CHECKS[key])


__all__ = ["CHECKS", "load"]
