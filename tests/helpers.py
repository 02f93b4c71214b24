"""Helpers the test modules share: writing inputs, reading outputs, invoking the CLI.

Imported as ``from helpers import ...`` (``tests/`` is on the path, as for ``models``).
"""

from __future__ import annotations

import csv
import gzip
import importlib
import importlib.util
import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from megaclassifier.cli import cli


def write_json(path: Path, data: Any) -> Path:
    """Write ``data`` as JSON (indent 1, as MegaDetector writes) and return ``path``."""
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")
    return path


def write_text(path: Path, text: str) -> Path:
    """Write ``text`` as UTF-8 without newline translation; ``.gz`` names are gzipped."""
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding="utf-8", newline="") as f:
            f.write(text)
    else:
        path.write_text(text, encoding="utf-8", newline="")
    return path


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    """Write a plain comma-joined CSV (no quoting: for test values only)."""
    lines = [",".join(header)] + [",".join(str(v) for v in row) for row in rows]
    return write_text(path, "\n".join(lines) + "\n")


def read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    """The header and rows of a CSV file, gzipped when its name ends in ``.gz``."""
    opener: Any = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def invoke(*args: object, quiet: bool = True) -> Result:
    """Run ``megaclassifier ARGS`` in-process (``-q`` first unless ``quiet=False``)."""
    return CliRunner().invoke(cli, [*(["-q"] if quiet else []), *map(str, args)])


def speciesnet_module(name: str) -> Any:
    """``speciesnet.<name>`` without running the package's ``__init__`` (which imports yolov5)."""
    if "speciesnet" not in sys.modules:
        spec = importlib.util.find_spec("speciesnet")
        if spec is None or spec.submodule_search_locations is None:
            pytest.skip("the speciesnet package (the oracle) is not installed: pip install --no-deps speciesnet")
        package = types.ModuleType("speciesnet")
        package.__path__ = list(spec.submodule_search_locations)
        package.__spec__ = spec
        sys.modules["speciesnet"] = package
    try:
        return importlib.import_module(f"speciesnet.{name}")
    except ImportError as e:
        pytest.skip(f"speciesnet.{name} cannot be imported ({e}); install the test extra")
