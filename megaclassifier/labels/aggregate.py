"""Sum a classifier's probabilities into a project's target labels.

The target mapping (what ``map-categories`` writes) assigns every classifier
label to exactly one target::

    {"cervid": ["deer", "elk"], "cow": ["cow"], "other": ["bear"]}

Each output value is the sum of the row's probabilities over the target's
labels, in float64, added left to right in the mapping's label order (the
order pandas adds them in the reference), written in shortest repr::

    path,deer,elk,cow,bear                 path,cervid,cow,other
    a.jpg___crop00_md.jpg,0.7,0.2,0.05,0.05  ->  a.jpg___crop00_md.jpg,0.8999999999999999,0.05,0.05

Target columns come in sorted order (plain string sort, so ``other`` sorts
among the rest), and the new index-to-name JSON lists them in that order::

    {
     "0": "cervid",
     "1": "cow",
     "2": "other"
    }

The CSV is read and written in chunks, so memory does not grow with its length;
``.gz`` names mean gzip. Both outputs are written atomically, the label index
only once the CSV is complete.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from megaclassifier.errors import InputFileError, LabelSpecError
from megaclassifier.formats.outputs import check_outputs
from megaclassifier.formats.probabilities import (
    LABEL_COLUMN,
    PATH_COLUMN,
    ProbabilityCsvReader,
    ProbabilityCsvWriter,
    write_label_index,
)
from megaclassifier.formats.reading import read_json

logger = logging.getLogger(__name__)

DEFAULT_CHUNK_ROWS = 1000


@dataclass(frozen=True)
class AggregateSummary:
    """What :func:`aggregate_probabilities` did.

    Attributes:
        rows: rows written.
        targets: target columns written.
    """

    rows: int
    targets: int


def aggregate_probabilities(
    classifier_results_csv: str | Path,
    *,
    target_mapping: str | Path,
    output_csv: str | Path,
    output_label_index: str | Path,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> AggregateSummary:
    """Write the target probabilities of a classifier probability CSV.

    Args:
        classifier_results_csv: the classifier's probability CSV (``.gz`` allowed).
        target_mapping: JSON ``{target: [classifier label, ...]}`` covering every column once.
        output_csv: the target probability CSV to write (``.gz`` allowed).
        output_label_index: the index-to-name JSON of the targets to write.
        chunk_rows: rows read and written at a time.

    Returns:
        Rows and targets written.

    Raises:
        InputFileError: an input that cannot be read, or a mapping of the wrong shape.
        LabelSpecError: the mapping does not cover the CSV's columns exactly once.
    """
    check_outputs([output_csv, output_label_index])
    mapping = load_target_mapping(target_mapping)
    targets = sorted(mapping)
    with ProbabilityCsvReader(classifier_results_csv) as reader:
        check_mapping_covers(mapping, reader.labels, mapping_path=target_mapping, csv_path=classifier_results_csv)
        if reader.has_label:
            logger.warning('%s: dropping its "%s" column', classifier_results_csv, LABEL_COLUMN)
        columns = [label for target in targets for label in mapping[target]]
        groups = _groups(mapping, targets)
        with ProbabilityCsvWriter(output_csv, targets, dtype="float64") as writer:
            for paths, values, _ in reader.iter_chunks(columns, chunk_rows=chunk_rows):
                writer.write_rows(paths, sum_groups(values, groups))
            write_label_index(output_label_index, targets)
        rows = writer.rows_written
    logger.debug("%s: %d rows -> %d targets", classifier_results_csv, rows, len(targets))
    return AggregateSummary(rows=rows, targets=len(targets))


def load_target_mapping(path: str | Path) -> dict[str, list[str]]:
    """Read a target mapping and check that no label is in two targets.

    Raises:
        InputFileError: not ``{target: [label, ...]}``, or a label in more than one target.
    """
    data = read_json(path)
    if not isinstance(data, dict) or not data:
        raise InputFileError(path, 'expected a non-empty JSON object {"target": ["classifier label", ...], ...}')
    for target, labels in data.items():
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise InputFileError(path, f"target {target!r}: expected a list of classifier labels")
        if target in (PATH_COLUMN, ""):
            raise InputFileError(path, f"target {target!r}: not a usable column name")
    seen: dict[str, list[str]] = {}
    for target, labels in data.items():
        for label in labels:
            seen.setdefault(label, []).append(target)
    twice = {label: owners for label, owners in seen.items() if len(owners) > 1}
    if twice:
        listed = "; ".join(f"{label!r} in {', '.join(map(repr, owners))}" for label, owners in sorted(twice.items()))
        raise InputFileError(path, f"labels in more than one target: {listed}")
    return data


def check_mapping_covers(
    mapping: Mapping[str, Sequence[str]], columns: Sequence[str], *, mapping_path: str | Path, csv_path: str | Path
) -> None:
    """Check that the mapping's labels are exactly the CSV's probability columns.

    Raises:
        InputFileError: duplicate columns in the CSV.
        LabelSpecError: columns no target has, or mapped labels the CSV lacks (one line listing both).
    """
    duplicates = sorted({c for c in columns if columns.count(c) > 1}) if len(set(columns)) < len(columns) else []
    if duplicates:
        raise InputFileError(csv_path, f"duplicate columns: {', '.join(duplicates)}")
    mapped = {label for labels in mapping.values() for label in labels}
    unmapped = [c for c in columns if c not in mapped]
    present = set(columns)
    unknown = sorted(label for label in mapped if label not in present)
    if unmapped or unknown:
        parts = []
        if unmapped:
            parts.append(f'unmapped: {", ".join(unmapped)} (add them to a target, e.g. "other")')
        if unknown:
            parts.append(f"unknown: {', '.join(unknown)} (not columns of the CSV)")
        raise LabelSpecError(f"{mapping_path} does not map the columns of {csv_path} exactly once; {'; '.join(parts)}")


def _groups(mapping: Mapping[str, Sequence[str]], targets: Sequence[str]) -> list[range]:
    """Each target's column positions in the concatenated column order."""
    groups = []
    start = 0
    for target in targets:
        groups.append(range(start, start + len(mapping[target])))
        start += len(mapping[target])
    return groups


def sum_groups(values: np.ndarray, groups: Sequence[Sequence[int]]) -> np.ndarray:
    """Sum column groups of a 2-D array, left to right in each group's order.

    Args:
        values: shape (rows, columns), float64.
        groups: for each output column, the input columns to add.

    Returns:
        Shape (rows, len(groups)); an empty group gives zeros.
    """
    values = np.asarray(values, dtype=np.float64)
    out = np.zeros((values.shape[0], len(groups)), dtype=np.float64)
    for j, group in enumerate(groups):
        if len(group) == 0:
            continue
        acc = values[:, group[0]].copy()
        for column in group[1:]:
            acc += values[:, column]
        out[:, j] = acc
    return out
