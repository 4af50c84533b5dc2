"""Shared pieces of the command line: the help formatter and atomic writes of result tables."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import pandas as pd

from galasim.atomic import atomic_write_text

FORMATS = (".csv", ".json")

USAGE, FAILURE, INTERRUPTED = 2, 1, 130
#: The end of every command's --help.
EXIT_STATUS = f"""
exit status:
  0 success; {FAILURE} a failure (a claim or a cell failed, the disk is full, an OS error);
  {USAGE} a usage error (a bad option, value or file: nothing ran, fix the command);
  {INTERRUPTED} interrupted (Ctrl-C or kill; a sweep keeps its finished cells and resumes).
  Errors are one line on stderr; GALASIM_TRACEBACK=1 shows the traceback of an internal error.
"""


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults in the option help (but not "None" or "False"); the epilog's layout as written."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _check_writable(folder: Path, path: Path, option_name: str) -> None:
    """Whether ``path`` can be written in ``folder``: its nearest existing ancestor is a writable folder."""
    existing = _nearest_existing(folder)
    if not existing.is_dir():
        raise ValueError(
            f"{option_name} {path}: {existing} is a file, so nothing can be created under it; "
            f"choose another {option_name}"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(
            f"{option_name} {path}: no permission to write in {existing}; choose another {option_name}"
        )


def check_output_dir(path: str | os.PathLike, option_name: str = "--out") -> Path:
    """Refuse, before any work, an output folder that is a file or cannot be created or written."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(
            f"{option_name} {path} is a file, not a folder; choose a folder (it is created if missing)"
        )
    _check_writable(path, path, option_name)
    return path


def check_output_file(path: str | os.PathLike, option_name: str = "--out") -> Path:
    """Refuse, before any work, an output file that is a folder or cannot be created."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{option_name} {path} is a folder; name a file (in it, for example)")
    _check_writable(path.parent, path, option_name)
    return path


def check_table_path(path: str | os.PathLike) -> str:
    """The table format of ``path`` from its extension; a clear error for any other extension."""
    check_output_file(path)
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"cannot write {path}: the extension must be one of {', '.join(FORMATS)}")
    return suffix


def write_table(table: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write ``table`` as CSV or JSON (records), chosen by the file's extension, atomically."""
    suffix = check_table_path(path)
    text = table.to_csv(index=False) if suffix == ".csv" else table.to_json(orient="records", indent=2)
    atomic_write_text(path, text)
