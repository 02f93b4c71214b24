"""The classifier probability CSV and the index-to-name JSON.

Probability CSV (``classify`` writes it, ``aggregate`` and ``merge`` read it)::

    path,deer,elk,cow,bear
    sub/a.jpg___crop00_md_v5a.0.0.pt.jpg,0.7,0.2,0.05,0.05

The header is ``path`` then the class names in index order. ``classify``
writes float32 values in their shortest form (``0.1``, ``0.33333334``,
``1e-07``); ``aggregate`` writes float64 sums the same way. A ``.gz`` name
means gzip. ``merge`` also accepts a ``label`` column. Reading checks that
every probability is a finite number in ``[0, 1]`` (within
``PROBABILITY_TOLERANCE``): ``nan``, ``inf`` or ``-3`` is an error naming the
file, line and column.

Index-to-name JSON (``--classifier-categories``, ``label_index.json``)::

    {"0": "deer", "1": "elk", "2": "cow"}

Keys are the contiguous decimal strings ``"0"`` ... ``"N-1"``.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import numpy as np

from megaclassifier.constants import PROBABILITY_TOLERANCE
from megaclassifier.errors import InputFileError
from megaclassifier.formats.atomic import atomic_output, write_json_atomic
from megaclassifier.formats.reading import open_text, read_json

PATH_COLUMN = "path"
LABEL_COLUMN = "label"


def load_label_index(path: str | Path) -> list[str]:
    """Read an index-to-name JSON and return the names in index order.

    Raises:
        InputFileError: not JSON, not an object of strings, or keys not ``"0"``..``"N-1"``.
    """
    data = read_json(path)
    if not isinstance(data, dict) or not data:
        raise InputFileError(path, 'expected a non-empty JSON object {"0": "name", "1": "name", ...}')
    expected = [str(i) for i in range(len(data))]
    if sorted(data, key=lambda k: (len(k), k)) != expected:
        missing = [k for k in expected if k not in data]
        extra = sorted(k for k in data if k not in set(expected))
        raise InputFileError(
            path,
            f'keys must be "0" to "{len(data) - 1}" without gaps; missing {missing[:5]}, unexpected {extra[:5]}',
        )
    names = [data[k] for k in expected]
    bad = [k for k, v in zip(expected, names, strict=True) if not isinstance(v, str) or not v.strip()]
    if bad:
        raise InputFileError(path, f"class names must be non-blank strings (key {bad[0]!r})")
    return names


def write_label_index(path: str | Path, names: Sequence[str]) -> None:
    """Write names as an index-to-name JSON with indent 1, atomically."""
    write_json_atomic(path, {str(i): name for i, name in enumerate(names)}, indent=1)


def format_float32(values: np.ndarray) -> list[str]:
    """Shortest round-trip text of float32 values, as pandas writes them."""
    return [str(v) for v in values.astype(np.float32, copy=False)]


def format_float64(values: np.ndarray) -> list[str]:
    """Shortest round-trip text of float64 values (Python's repr)."""
    return [repr(v) for v in values.astype(np.float64, copy=False).tolist()]


class ProbabilityCsvWriter:
    """Stream rows into a probability CSV written atomically at :meth:`close`.

    Use as a context manager; an exception inside the block leaves no file::

        with ProbabilityCsvWriter(out, ["deer", "elk"]) as w:
            w.write_rows(["a.jpg___crop00_md.jpg"], np.array([[0.9, 0.1]], np.float32))
    """

    def __init__(self, path: str | Path, labels: Sequence[str], *, dtype: str = "float32") -> None:
        self.path = Path(path)
        self.labels = list(labels)
        self.rows_written = 0
        self._format = format_float32 if dtype == "float32" else format_float64
        self._ctx = atomic_output(self.path, "w")
        self._file: IO[str] | None = None
        self._writer: Any = None

    def __enter__(self) -> ProbabilityCsvWriter:
        self._file = self._ctx.__enter__()
        self._writer = csv.writer(self._file, lineterminator="\n")
        self._writer.writerow([PATH_COLUMN, *self.labels])
        return self

    def write_rows(self, paths: Sequence[str], values: np.ndarray) -> None:
        """Append one row per path; ``values`` has shape (len(paths), len(labels))."""
        self.write_formatted(self.format_rows(paths, values))

    def format_rows(self, paths: Sequence[str], values: np.ndarray) -> list[list[str]]:
        """The rows :meth:`write_rows` would write, as the strings of their cells."""
        if len(paths) == 0:
            return []
        flat = self._format(np.asarray(values).reshape(-1))
        width = len(self.labels)
        return [[path, *flat[i * width : (i + 1) * width]] for i, path in enumerate(paths)]

    def write_formatted(self, rows: Sequence[Sequence[str]]) -> None:
        """Append rows made by :meth:`format_rows` (here, or by an interrupted run: see the resume journal)."""
        self._writer.writerows(rows)
        self.rows_written += len(rows)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._ctx.__exit__(exc_type, exc, tb)


class ProbabilityCsvReader:
    """Read a probability CSV in chunks: memory stays flat whatever its length.

    Attributes:
        header: the column names, ``path`` first.
        labels: the columns other than ``path`` and ``label``.
        has_label: whether a ``label`` column is present.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self._file = open_text(self.path, file_names=True)
            self._reader = csv.reader(self._file)
            header = next(self._reader, None)
        except FileNotFoundError:
            raise InputFileError(path, "no such file") from None
        except (OSError, UnicodeDecodeError, csv.Error) as e:
            raise InputFileError(path, f"cannot read as CSV ({e})") from None
        if not header:
            self._file.close()
            raise InputFileError(path, "empty file; expected a header line path,<class names>")
        if header[0] != PATH_COLUMN:
            self._file.close()
            raise InputFileError(
                path, f'first column must be "path", got {header[0]!r}; is this a classifier output CSV?'
            )
        self.header = header
        self.has_label = LABEL_COLUMN in header
        self.labels = [c for c in header[1:] if c != LABEL_COLUMN]

    def close(self) -> None:
        """Close the file."""
        self._file.close()

    def __enter__(self) -> ProbabilityCsvReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def iter_chunks(
        self, columns: Sequence[str] | None = None, *, chunk_rows: int = 2048
    ) -> Iterator[tuple[list[str], np.ndarray, list[str] | None]]:
        """Yield ``(paths, values, labels)`` per chunk.

        Args:
            columns: which probability columns, in this order (default: all labels).
            chunk_rows: rows per chunk.

        Returns:
            paths, a float64 array of shape (rows, len(columns)), and the ``label``
            column's values (None without one).
        """
        columns = self.labels if columns is None else list(columns)
        positions = [self.header.index(c) for c in columns]
        label_pos = self.header.index(LABEL_COLUMN) if self.has_label else None
        width = len(self.header)
        paths: list[str] = []
        texts: list[list[str]] = []
        labels: list[str] = []
        lines: list[int] = []
        try:
            for row in self._reader:
                if not row:
                    continue
                if len(row) != width:
                    line = self._reader.line_num
                    raise InputFileError(self.path, f"line {line}: {len(row)} fields, header has {width}")
                paths.append(row[0])
                lines.append(self._reader.line_num)
                texts.append([row[p] for p in positions])
                if label_pos is not None:
                    labels.append(row[label_pos])
                if len(paths) >= chunk_rows:
                    yield paths, self._to_array(texts, columns, lines), labels or None
                    paths, texts, labels, lines = [], [], [], []
        except (OSError, EOFError, csv.Error, UnicodeDecodeError) as e:
            raise InputFileError(self.path, f"cannot read line {self._reader.line_num + 1} ({e})") from None
        if paths:
            yield paths, self._to_array(texts, columns, lines), labels or None

    def _to_array(self, texts: list[list[str]], columns: Sequence[str], lines: list[int]) -> np.ndarray:
        """The chunk's values as float64, each checked to be a probability; ``lines`` are the rows' line numbers."""
        try:
            values = np.array(texts, dtype=np.float64).reshape(len(texts), -1)
        except ValueError:
            for offset, text_row in enumerate(texts):
                for value in text_row:
                    try:
                        float(value)
                    except ValueError:
                        raise InputFileError(self.path, f"line {lines[offset]}: not a number: {value!r}") from None
            raise
        bad = ~np.isfinite(values) | (values < -PROBABILITY_TOLERANCE) | (values > 1 + PROBABILITY_TOLERANCE)
        if bad.any():
            at, col = (int(i) for i in np.argwhere(bad)[0])
            raise InputFileError(
                self.path,
                f"line {lines[at]} column {columns[col]!r}: {texts[at][col]!r} is not a probability "
                "(a finite number from 0 to 1)",
            )
        return values
