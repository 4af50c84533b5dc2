"""Shared pieces of the command line: the help formatter and atomic writes of result tables."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import pandas as pd

from galasim.atomic import atomic_write_text

FORMATS = (".csv", ".json")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults in the option help (but not "None" or "False"); the epilog's layout as written."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def check_table_path(path: str | os.PathLike) -> str:
    """The table format of ``path`` from its extension; a clear error for any other extension."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"cannot write {path}: the extension must be one of {', '.join(FORMATS)}")
    return suffix


def write_table(table: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write ``table`` as CSV or JSON (records), chosen by the file's extension, atomically."""
    suffix = check_table_path(path)
    text = table.to_csv(index=False) if suffix == ".csv" else table.to_json(orient="records", indent=2)
    atomic_write_text(path, text)
