"""YAML and TOML files of settings (sweep grids, training configs), read with one-line errors."""
from __future__ import annotations

from pathlib import Path
from typing import Any

SUFFIXES = (".yaml", ".yml", ".toml")


def read_settings_file(path: str | Path, what: str) -> dict[str, Any]:
    """The top-level mapping of a ``.yaml``/``.yml``/``.toml`` file (``{}`` for an empty one).

    Every failure is a ``ValueError`` that names ``what`` and the file: an unknown suffix, a missing
    or unreadable file, a folder, text that is not UTF-8, a syntax error, a top level that is not a
    mapping.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "grid.toml"
    >>> _ = path.write_text("delays = [0, 1]\\n")
    >>> read_settings_file(path, "grid file")
    {'delays': [0, 1]}
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(f"{what} {path} must end in .yaml, .yml or .toml")
    if path.is_dir():
        raise ValueError(f"{what} {path} is a folder; name a .yaml, .yml or .toml file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{what} {path} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset "
                         f"{exc.start}); save it as UTF-8") from None
    except OSError as exc:
        raise ValueError(f"cannot read {what} {path}: {exc.strerror}") from None
    import yaml  # imported here: the package's import stays light

    try:
        if suffix == ".toml":
            import tomllib  # Python >= 3.11; imported here so YAML files work on 3.10 too

            mapping = tomllib.loads(text)
        else:
            mapping = yaml.safe_load(text)
    except (yaml.YAMLError, ValueError) as exc:  # tomllib.TOMLDecodeError is a ValueError
        raise ValueError(f"cannot parse {what} {path}: {_one_line(exc)}") from None
    if mapping is None:
        return {}
    if not isinstance(mapping, dict):
        raise ValueError(f"{what} {path} must map parameter names to values, got {mapping!r}")
    return mapping


def _one_line(exc: Exception) -> str:
    """PyYAML's messages span several lines (the offending text, a caret); keep the problem and where."""
    mark, problem = getattr(exc, "problem_mark", None), getattr(exc, "problem", None)
    if problem and mark is not None:
        return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"
    return " ".join(str(exc).split())
