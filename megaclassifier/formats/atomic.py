"""Atomic output: write to a temporary file beside the destination, then rename.

A crash or an error never leaves a file that looks complete::

    with atomic_output(Path("out.csv.gz"), "wt") as f:
        f.write("path,deer\\n")
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, cast


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` on success.

    Parent folders are created. On any exception the temporary file is removed
    and ``path`` is left as it was.
    """
    dest = Path(path)
    parent = dest.parent if str(dest.parent) else Path(".")
    parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_output(path: str | Path, mode: str = "w", *, gzip_level: int = 6) -> Iterator[IO[Any]]:
    """Open a temporary file for writing and rename it to ``path`` when the block ends.

    A ``.gz`` suffix writes gzip. Text modes use UTF-8 and ``\\n`` line endings.
    """
    with atomic_path(path) as tmp:
        binary = "b" in mode
        gz = str(path).endswith(".gz")
        raw = cast(IO[bytes], gzip.open(tmp, "wb", compresslevel=gzip_level) if gz else open(tmp, "wb"))  # noqa: SIM115
        try:
            if binary:
                yield raw
            else:
                text = io.TextIOWrapper(raw, encoding="utf-8", newline="\n")
                try:
                    yield text
                finally:
                    text.flush()
                    text.detach()
        finally:
            raw.close()


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file beside it and a rename.

    The parent folder must exist. Cheaper than :func:`atomic_path` (no
    ``mkstemp``): the temporary name is unique per process and thread, which is
    all that concurrent writers of distinct files need.
    """
    dest = Path(path)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_json_atomic(path: str | Path, obj: Any, *, indent: int | None = 1, ensure_ascii: bool = True) -> None:
    """Write ``obj`` as JSON (indent 1, ASCII-escaped, key order kept) atomically."""
    with atomic_output(path, "w") as f:
        json.dump(obj, f, indent=indent, ensure_ascii=ensure_ascii)


def read_json(path: str | Path) -> Any:
    """Read a JSON file.

    Raises:
        InputFileError: missing, unreadable or not JSON; the message names the file.
    """
    from megaclassifier.errors import InputFileError

    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise InputFileError(path, "no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputFileError(path, f"not valid JSON ({e})") from None
    except OSError as e:
        raise InputFileError(path, e.strerror or str(e)) from None


def open_text(path: str | Path) -> IO[str]:
    """Open a text file for reading, transparently gunzipping a ``.gz`` file."""
    if str(path).endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")  # noqa: SIM115 - caller closes
