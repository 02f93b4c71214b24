"""The one reader of JSON input files: whole (:func:`read_json`) or streamed (:func:`json_events`).

Every command reads its JSON inputs (detections and results files, index-to-name
and mapping files, taxonomy and sequence files) through this module, so a file
made to hurt gets the same one line everywhere, naming the file:

* nesting deeper than :data:`~megaclassifier.constants.MAX_JSON_DEPTH` levels
  (a MegaDetector results file needs 6) is refused: Python's parser would end in
  ``RecursionError``, and writing such a value back would too;
* a number of more than :data:`MAX_NUMBER_DIGITS` digits is refused: Python's
  ``int()`` refuses it (``ValueError``), and ijson's C parser crashes on it;
* text that is not UTF-8, or not JSON, is refused with the parser's position.

The streamed reader keeps memory bounded by the size of one value, whatever the
nesting: it uses ijson's basic events (no per-level prefix strings) and counts
the depth itself. ijson's fast C parser cannot read a lone surrogate escape such
as ``"\\udcff"`` (which is how results files hold the byte 0xff of a file name
that is not UTF-8) nor integers beyond 64 bits; :class:`SlowPathNeeded` says so,
and the caller reads the file again with ijson's pure-Python parser.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from megaclassifier.constants import MAX_JSON_DEPTH
from megaclassifier.errors import InputFileError

#: Python's own limit on the digits of an integer read from text (``sys.get_int_max_str_digits``).
MAX_NUMBER_DIGITS = 4300

TOO_DEEP = f"nested deeper than {MAX_JSON_DEPTH} levels; not a file this toolkit reads"
TOO_LONG_NUMBER = f"holds a number of more than {MAX_NUMBER_DIGITS} digits; not a file this toolkit reads"

#: every digit to b"0", every other byte to b" ": a run of digits is then a plain substring search
_DIGITS_ONLY = bytes(48 if 48 <= i <= 57 else 32 for i in range(256))
_TOO_MANY_DIGITS = b"0" * (MAX_NUMBER_DIGITS + 1)


def read_json(path: str | Path, *, hint: str = "") -> Any:
    """Read a whole JSON file.

    Args:
        path: the file.
        hint: appended to the "not a text file" message, e.g. ``"; is this a MegaDetector output file?"``.

    Raises:
        InputFileError: missing, a folder, unreadable, not UTF-8, not JSON, nested too deep or
            holding an absurdly long number; the message names the file.
    """
    return read_json_and_bytes(path, hint=hint)[0]


def read_json_and_bytes(path: str | Path, *, hint: str = "") -> tuple[Any, bytes]:
    """:func:`read_json`, and the bytes it parsed (to hash the file without reading it again)."""
    try:
        raw = Path(path).read_bytes()
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise InputFileError(path, "no such file") from None
    except IsADirectoryError:
        raise InputFileError(path, "is a folder, not a file") from None
    except UnicodeDecodeError:
        raise InputFileError(path, f"not a text file{hint}") from None
    except OSError as e:
        raise InputFileError(path, e.strerror or str(e)) from None
    return parse_json(text, path), raw


def parse_json(text: str, path: str | Path) -> Any:
    """Parse JSON text read from ``path`` under the same rules as :func:`read_json`."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputFileError(path, f"not valid JSON (line {e.lineno} column {e.colno}: {e.msg})") from None
    except RecursionError:
        raise InputFileError(path, TOO_DEEP) from None
    except ValueError as e:  # "Exceeds the limit (4300 digits) for integer string conversion"
        if "digits" not in str(e):
            raise
        raise InputFileError(path, TOO_LONG_NUMBER) from None
    if nesting_exceeds(data, MAX_JSON_DEPTH):
        raise InputFileError(path, TOO_DEEP)
    return data


def nesting_exceeds(value: Any, limit: int) -> bool:
    """Whether objects and arrays nest more than ``limit`` levels (the top one is level 1); no recursion."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


class SlowPathNeeded(Exception):
    """ijson's C parser cannot read this file (a lone surrogate escape, an integer beyond 64 bits)."""


class _DigitGuard:
    """A binary file that refuses, before any parser sees it, a run of more than MAX_NUMBER_DIGITS digits."""

    def __init__(self, f: IO[bytes], path: str | Path) -> None:
        self._f = f
        self._path = path
        self._carry = b""  # the digits that ended the previous block

    def read(self, size: int = -1) -> bytes:
        block = self._f.read(size)
        digits = self._carry + block.translate(_DIGITS_ONLY)
        if _TOO_MANY_DIGITS in digits:
            raise InputFileError(self._path, TOO_LONG_NUMBER)
        self._carry = digits[len(digits.rstrip(b"0")) :]  # the run of digits the block ends with
        return block


_OPEN = frozenset(("start_map", "start_array"))
_CLOSE = frozenset(("end_map", "end_array"))


def _backend(pure_python: bool) -> Any:
    if pure_python:
        from ijson.backends import python

        return python
    import ijson

    return ijson


def json_items(f: IO[bytes], path: str | Path, prefix: str, *, pure_python: bool = False) -> Iterator[Any]:
    """ijson's ``items(f, prefix)``, in C: fast, but it keeps a prefix string per nesting level.

    So only for a file whose nesting :func:`json_events` has already bounded (a file read
    again after its header scan, unchanged since).

    Raises:
        InputFileError: not JSON, a number too long.
    """
    import ijson

    try:
        yield from _backend(pure_python).items(_DigitGuard(f, path), prefix, use_float=True)
    except ijson.JSONError as e:
        raise InputFileError(
            path, f"not valid JSON ({(str(e).strip().splitlines() or [type(e).__name__])[0]})"
        ) from None
    except UnicodeDecodeError:
        raise InputFileError(path, "not a UTF-8 text file") from None


def json_events(f: IO[bytes], path: str | Path, *, pure_python: bool = False) -> Iterator[tuple[str, Any]]:
    """ijson's basic ``(event, value)`` pairs of a binary file, depth-checked, numbers as int or float.

    Raises:
        InputFileError: not JSON, nested too deep, a number too long.
        SlowPathNeeded: with ``pure_python=False``, the C parser cannot read this file.
    """
    import ijson

    backend = _backend(pure_python)
    depth = 0
    try:
        for event, value in backend.basic_parse(_DigitGuard(f, path), use_float=True):
            if event in _OPEN:
                depth += 1
                if depth > MAX_JSON_DEPTH:
                    raise InputFileError(path, TOO_DEEP)
            elif event in _CLOSE:
                depth -= 1
            yield event, value
    except UnicodeDecodeError as e:
        if not pure_python:
            raise SlowPathNeeded from e
        raise InputFileError(path, "not a UTF-8 text file") from None
    except ijson.JSONError as e:
        message = (str(e).strip().splitlines() or [type(e).__name__])[0]
        if not pure_python and "integer overflow" in message:
            raise SlowPathNeeded from e
        raise InputFileError(path, f"not valid JSON ({message})") from None
