"""The label-specification CSV and its conversion to the label-specification JSON.

A label-specification CSV says which images make up each output label::

    output_label,type,content
    # deer and elk from two datasets, plus everything in the deer family
    cervid,row,idfg|deer
    cervid,row,idfg|elk
    cervid,max_count,50000
    cervid,family,cervidae
    cervid,datasettaxon,idfg|family|cervidae
    bird,class,aves
    bird,prioritize,"[['idfg_swwlf_2019'], ['idfg']]"
    !bird,genus,meleagris

The header must be exactly ``output_label,type,content``. Each row adds to one
label; a label written ``!bird`` adds to the ``exclude`` object of ``bird``.

* ``row``, content ``dataset|dataset_label``: appends to ``dataset_labels[dataset]``.
* ``datasettaxon``, content ``dataset|taxon_level|taxon_name``: appends
  ``{"level", "name", "datasets": [dataset]}`` to ``taxa``.
* ``max_count``, an integer: sets ``max_count`` (a JSON number).
* ``prioritize``, e.g. ``"[['ds1'], ['ds2', 'ds3']]"``: sets ``prioritize``, a
  literal list of lists of dataset names (read as a literal, never evaluated).
* anything else is a taxon level (``family``, ``genus``, ``species``, ...),
  content ``taxon_name``: appends ``{"level": <type>, "name": taxon_name}`` to ``taxa``.

As in the reference, ``#`` starts a comment anywhere on a line, even inside a
quoted field: the rest of that line is dropped. Blank lines are skipped.
Fields are kept exactly as written (nothing is lower-cased or stripped; a
field with surrounding spaces is logged as a warning). The JSON is::

    {"cervid": {"dataset_labels": {"idfg": ["deer", "elk"]},
                "taxa": [{"level": "family", "name": "cervidae"},
                         {"level": "family", "name": "cervidae", "datasets": ["idfg"]}],
                "max_count": 50000},
     "bird": {"taxa": [{"level": "class", "name": "aves"}],
              "exclude": {"taxa": [{"level": "genus", "name": "meleagris"}]},
              "prioritize": [["idfg_swwlf_2019"], ["idfg"]]}}

Labels keep their first-appearance order; inside each object the keys come in
the order ``dataset_labels, taxa, exclude, max_count, prioritize``.
"""

from __future__ import annotations

import ast
import csv
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from megaclassifier.errors import InputFileError
from megaclassifier.formats.atomic import write_json_atomic

logger = logging.getLogger(__name__)

HEADER = ("output_label", "type", "content")
KEY_ORDER = ("dataset_labels", "taxa", "exclude", "max_count", "prioritize")
COMMENT = "#"
EXCLUDE_PREFIX = "!"

LabelSpec = dict[str, Any]


@dataclass(frozen=True)
class CsvToJsonSummary:
    """What :func:`csv_to_json` did.

    Attributes:
        labels: output labels in the JSON.
        rows: specification rows read (header, comments and blank lines not counted).
    """

    labels: int
    rows: int


def csv_to_json(input_csv: str | Path, output_json: str | Path, *, json_indent: int | None = None) -> CsvToJsonSummary:
    """Convert a label-specification CSV to the label-specification JSON.

    Args:
        input_csv: the CSV (format in the module docstring).
        output_json: the JSON to write, atomically; folders are created.
        json_indent: JSON indent; None writes one line with ``", "`` and ``": "`` separators.

    Returns:
        The number of labels and rows.

    Raises:
        InputFileError: the CSV cannot be read or a row is malformed (the message names the line).
    """
    spec, rows = _parse_file(input_csv)
    write_json_atomic(output_json, spec, indent=json_indent, ensure_ascii=True)
    logger.debug("%s: %d labels from %d rows -> %s", input_csv, len(spec), rows, output_json)
    return CsvToJsonSummary(labels=len(spec), rows=rows)


def read_label_spec_csv(path: str | Path) -> dict[str, LabelSpec]:
    """Read a label-specification CSV into the JSON structure (a dict, key order as written)."""
    return _parse_file(path)[0]


def parse_label_spec_text(text: str, *, source: str | Path = "<text>") -> dict[str, LabelSpec]:
    """Parse the text of a label-specification CSV.

    Args:
        text: the whole file's text.
        source: the name used in error messages.

    Raises:
        InputFileError: a malformed header or row.
    """
    return _parse_text(text, source)[0]


def _parse_file(path: str | Path) -> tuple[dict[str, LabelSpec], int]:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise InputFileError(path, "no such file") from None
    except OSError as e:
        raise InputFileError(path, e.strerror or str(e)) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise InputFileError(path, f"line {line}: not UTF-8 text (byte {e.start}); save the CSV as UTF-8") from None
    return _parse_text(text, path)


def _records(text: str, source: str | Path) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line number, fields)`` of each non-blank CSV record, comments removed."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = (line.split(COMMENT, 1)[0] + "\n" for line in text.split("\n"))
    reader = csv.reader(lines, strict=True)
    while True:
        start = reader.line_num + 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise InputFileError(source, f"line {start}: not valid CSV ({e})") from None
        if any(field.strip() for field in fields):
            yield start, fields


def _parse_text(text: str, source: str | Path) -> tuple[dict[str, LabelSpec], int]:
    records = _records(text.removeprefix("\ufeff"), source)
    first = next(records, None)
    if first is None:
        raise InputFileError(source, f"empty file; expected the header {','.join(HEADER)}")
    line, header = first
    if tuple(field.strip() for field in header) != HEADER:
        raise InputFileError(source, f"line {line}: header must be {','.join(HEADER)}, got {','.join(header)!r}")

    spec: dict[str, LabelSpec] = {}
    rows = 0
    for line, fields in records:
        rows += 1
        if len(fields) != len(HEADER):
            raise InputFileError(
                source, f"line {line}: expected 3 fields output_label,type,content, got {len(fields)}: {fields!r}"
            )
        for column, value in zip(HEADER, fields, strict=True):
            if not value.strip():
                raise InputFileError(source, f"line {line}: empty {column}")
            if value != value.strip():
                logger.warning("%s: line %d: %s %r has surrounding spaces; kept as written",
                               source, line, column, value)  # fmt: skip
        label, kind, content = fields
        if label.startswith(EXCLUDE_PREFIX):
            name = label[len(EXCLUDE_PREFIX) :]
            if not name.strip():
                raise InputFileError(source, f"line {line}: {label!r} names no label after the '!'")
            target = spec.setdefault(name, {}).setdefault("exclude", {})
        else:
            target = spec.setdefault(label, {})
        _apply_row(target, kind, content, source=source, line=line)
    return {name: _ordered(obj) for name, obj in spec.items()}, rows


def _apply_row(obj: LabelSpec, kind: str, content: str, *, source: str | Path, line: int) -> None:
    """Add one row's ``type`` and ``content`` to a label (or exclude) object."""
    if kind == "row":
        parts = content.split("|")
        if len(parts) != 2 or not all(p.strip() for p in parts):
            raise InputFileError(source, f"line {line}: a 'row' needs content dataset|dataset_label, got {content!r}")
        dataset, dataset_label = parts
        obj.setdefault("dataset_labels", {}).setdefault(dataset, []).append(dataset_label)
    elif kind == "datasettaxon":
        parts = content.split("|")
        if len(parts) != 3 or not all(p.strip() for p in parts):
            raise InputFileError(
                source, f"line {line}: a 'datasettaxon' needs content dataset|taxon_level|taxon_name, got {content!r}"
            )
        dataset, level, name = parts
        obj.setdefault("taxa", []).append({"level": level, "name": name, "datasets": [dataset]})
    elif kind == "max_count":
        try:
            obj["max_count"] = int(content.strip())
        except ValueError:
            raise InputFileError(source, f"line {line}: max_count must be an integer, got {content!r}") from None
    elif kind == "prioritize":
        obj["prioritize"] = parse_prioritize(content, source=source, line=line)
    else:
        obj.setdefault("taxa", []).append({"level": kind, "name": content})


def parse_prioritize(content: str, *, source: str | Path = "<text>", line: int = 0) -> list[list[str]]:
    """Parse a ``prioritize`` cell: a Python literal list of lists of dataset names.

    The text is read with :func:`ast.literal_eval` (which evaluates literals only,
    never code) and must be a list of lists of strings.

    Raises:
        InputFileError: anything else.
    """
    expected = "a list of lists of dataset names, e.g. [['ds1'], ['ds2', 'ds3']]"
    try:
        value = ast.literal_eval(content.strip())
    except Exception:  # literal_eval raises many types (SyntaxError, ValueError, RecursionError, ...)
        raise InputFileError(source, f"line {line}: prioritize must be {expected}; got {content!r}") from None
    if not (
        isinstance(value, list)
        and all(isinstance(tier, list) and all(isinstance(ds, str) for ds in tier) for tier in value)
    ):
        raise InputFileError(source, f"line {line}: prioritize must be {expected}; got {content!r}")
    return value


def _ordered(obj: LabelSpec) -> LabelSpec:
    """The object with its keys in :data:`KEY_ORDER`, ``exclude`` ordered too."""
    out = {key: obj[key] for key in KEY_ORDER if key in obj}
    if "exclude" in out:
        out["exclude"] = _ordered(out["exclude"])
    return out
