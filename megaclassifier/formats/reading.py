"""Reading input files: JSON through the one JSON reader, text files gunzipped when ``.gz``."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import IO, Any


def read_json(path: str | Path) -> Any:
    """Read a JSON file through the one JSON reader, :func:`megaclassifier.formats.json_input.read_json`.

    Raises:
        InputFileError: missing, unreadable, not JSON, nested too deep; the message names the file.
    """
    from megaclassifier.formats.json_input import read_json as read

    return read(path)


def open_text(path: str | Path, *, file_names: bool = False) -> IO[str]:
    """Open a text file for reading, transparently gunzipping a ``.gz`` file.

    With ``file_names``, bytes that are not UTF-8 come back as lone surrogates, as ``os.fsdecode``
    gives them: the probability CSV holds file names as the file system has them
    (:mod:`megaclassifier.formats.naming`). Otherwise they are an error.
    """
    errors = "surrogateescape" if file_names else "strict"
    if str(path).endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8", errors=errors, newline="")
    return open(path, encoding="utf-8", errors=errors, newline="")  # noqa: SIM115 - caller closes
