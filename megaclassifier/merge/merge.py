"""Merge classifier probabilities into a MegaDetector results file.

Input: a probability CSV keyed by crop name (see
:mod:`megaclassifier.formats.probabilities`), its index-to-name JSON and the
MegaDetector JSON the crops were cut from. Every detection whose crop has a
CSV row gets a ``classifications`` list of ``[class_id, confidence]`` pairs:
the classes whose probability is at least the threshold, rounded to 4
decimals, sorted by descending confidence (ties keep class order)::

    path,cervid,cow,other
    cam1/IMG_0001.JPG___crop00_md_v5a.0.0.pt.jpg,0.5,0.25,0.25

becomes, with threshold 0.1::

    {
     "info": {"format_version": "1.4", "detector": "md_v5a.0.0.pt",
      "classifier": "my_classifier", "classification_completion_time": "2026-11-25 14:03:27",
      "classifier_metadata": {"typical_classification_threshold": 0.75}},
     "detection_categories": {"1": "animal", "2": "person", "3": "vehicle"},
     "images": [{"file": "cam1/IMG_0001.JPG", "detections": [
      {"category": "1", "conf": 0.93, "bbox": [0.1, 0.2, 0.3, 0.4],
       "classifications": [["0", 0.5], ["1", 0.25], ["2", 0.25]]}]}],
     "classification_categories": {"0": "cervid", "1": "cow", "2": "other"}
    }

Detections without a CSV row, failed images and every other field are copied
unchanged. ``format_version`` is kept when it is 1.3 or later (a number becomes
its string); an older or missing version is raised to ``"1.3"``, the first
version MegaDetector's validator accepts, and integral ``conf`` values become
floats, which that version requires. Nothing else that 1.3 changed applies
to older files. With a ``label`` column (ground truth, as the training scripts
write) the categories also get ``"1000000+i": "label: <name>"`` entries.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from megaclassifier.constants import DEFAULT_MERGE_THRESHOLD
from megaclassifier.errors import InputFileError, MegaClassifierError
from megaclassifier.formats.detections import load_detections, write_detections
from megaclassifier.formats.outputs import check_writable
from megaclassifier.formats.probabilities import LABEL_COLUMN, ProbabilityCsvReader, load_label_index
from megaclassifier.labels.descriptions import load_taxonomy_file
from megaclassifier.merge.attach import (
    LOGGED_EXAMPLES,
    Classifications,
    classification_list,
)
from megaclassifier.merge.rows import MergeSummary, merge_rows

if TYPE_CHECKING:
    from megaclassifier.postprocess.ensemble import Ensemble

logger = logging.getLogger(__name__)

#: Category IDs of ground-truth label pseudo-classes are ``LABEL_ID_OFFSET + index``.
LABEL_ID_OFFSET = 1_000_000


def _check_columns(reader: ProbabilityCsvReader, names: list[str], label_names_json: Path) -> bool:
    """Whether the CSV holds predictions for ``names``; raise on a partial match."""
    columns = set(reader.labels)
    missing = [n for n in names if n not in columns]
    extra = [c for c in reader.labels if c not in set(names)]
    if not missing and not extra:
        return True
    if not reader.labels and reader.has_label:
        return False

    def quoted(items: list[str]) -> str:
        more = f" and {len(items) - LOGGED_EXAMPLES} more" if len(items) > LOGGED_EXAMPLES else ""
        return ", ".join(f'"{x}"' for x in items[:LOGGED_EXAMPLES]) + more

    if len(missing) == len(names):
        problem = f"none of the {len(names)} class names in {label_names_json} is a column"
        if not reader.labels:
            problem += ' and there is no "label" column'
    else:
        parts = []
        if missing:
            parts.append(
                f"no column for {len(missing)} of the {len(names)} classes in {label_names_json}: {quoted(missing)}"
            )
        if extra:
            parts.append(f"{len(extra)} columns are not classes in {label_names_json}: {quoted(extra)}")
        problem = "; ".join(parts)
    raise InputFileError(reader.path, f"{problem}; was it written with that label index?")


@dataclass(frozen=True)
class _RowRules:
    """How ``merge`` turns one CSV row into a ``classifications`` list."""

    contains_preds: bool
    threshold: float
    max_classifications: int | None
    label: Literal["first", "last"] | None
    relative_conf: bool

    @property
    def needs_label(self) -> bool:
        return bool(self.label or self.relative_conf or not self.contains_preds)

    def classifications(self, probs: np.ndarray | None, label_idx: int | None) -> Classifications:
        label_pair = [str(LABEL_ID_OFFSET + label_idx), 1.0] if label_idx is not None else None
        if not self.contains_preds or probs is None:
            return [label_pair] if label_pair else []
        if self.relative_conf and label_idx is not None:
            probs = np.maximum(probs - probs[label_idx], 0.0)
        result = classification_list(probs, threshold=self.threshold, max_classifications=self.max_classifications)
        if self.label is not None and label_pair is not None:
            result.insert(0 if self.label == "first" else len(result), label_pair)
        return result


def _csv_rows(
    reader: ProbabilityCsvReader, names: list[str], rules: _RowRules, *, progress: bool
) -> Iterator[tuple[str, Classifications]]:
    index_of = {n: i for i, n in enumerate(names)}
    from tqdm import tqdm

    with tqdm(desc="merge", unit=" rows", disable=not progress) as bar:
        for paths, values, labels in reader.iter_chunks(names if rules.contains_preds else []):
            for row, path in enumerate(paths):
                label_idx = None
                if labels is not None and rules.needs_label:
                    label_idx = index_of.get(labels[row])
                    if label_idx is None:
                        raise InputFileError(
                            reader.path, f'{path}: label "{labels[row]}" is not a class of the label index'
                        )
                yield path, rules.classifications(values[row] if rules.contains_preds else None, label_idx)
            bar.update(len(paths))


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def _ensemble_rules(ensemble: Ensemble, names: list[str], label_names_json: Path, rules: _RowRules) -> _RowRules:
    """The row rules under an ensemble: the top classes it reads, unthresholded; the release's classes only."""
    from megaclassifier.postprocess.ensemble import classes_kept

    if not rules.contains_preds or rules.label is not None or rules.relative_conf:
        raise MegaClassifierError("--ensemble needs probability columns, without --label or --relative-conf")
    if len(names) != len(ensemble.class_labels):
        raise InputFileError(
            label_names_json,
            f"{len(names)} classes, but the release has {len(ensemble.class_labels)}; "
            "--ensemble needs the release's own classify output",
        )
    return _RowRules(True, 0.0, classes_kept(rules.threshold, rules.max_classifications), None, False)


def merge_classifications(
    classification_csv: str | Path,
    label_names_json: str | Path,
    *,
    output_json: str | Path,
    classifier_name: str,
    detection_json: str | Path,
    threshold: float = DEFAULT_MERGE_THRESHOLD,
    typical_classification_threshold: float | None = None,
    datasets: Sequence[str] | None = None,
    max_classifications: int | None = None,
    label: Literal["first", "last"] | None = None,
    relative_conf: bool = False,
    taxonomy: str | Path | None = None,
    ensemble: Ensemble | None = None,
    progress: bool = False,
) -> MergeSummary:
    """Merge a probability CSV into a MegaDetector results file and write the result.

    Args:
        classification_csv: ``path`` plus one column per class name and/or a
            ``label`` column; ``.gz`` is read as gzip. Streamed in chunks.
        label_names_json: index-to-name JSON of the classes.
        output_json: where to write; folders are created; written atomically.
            Must not be ``detection_json``, which is never modified.
        classifier_name: goes to ``info.classifier``.
        detection_json: the MegaDetector results the crops came from.
        threshold: keep classes whose probability is at least this.
        typical_classification_threshold: stored as
            ``info.classifier_metadata.typical_classification_threshold``.
        datasets: keep only images whose ``file`` begins with ``<dataset>/``.
        max_classifications: keep at most this many classes per detection.
        label: add the ``label`` column's class as ``[1000000+i, 1.0]``,
            first or last in each list.
        relative_conf: write ``max(p - p_label, 0)`` instead of ``p``.
        taxonomy: class name -> taxonomy CSV; writes ``classification_category_descriptions``
            (see :mod:`megaclassifier.labels.descriptions`).
        ensemble: SpeciesNet's ensemble over a release's ``classify`` output
            (:mod:`megaclassifier.postprocess.ensemble`): the label index must be the release's classes;
            each row's top classes go into it, the release's labels become the descriptions.
        progress: show a progress bar on stderr.

    Raises:
        InputFileError: an input is missing or malformed, or the CSV's
            columns do not match the label index.
        MegaClassifierError: ``output_json`` is ``detection_json``.
    """
    classification_csv, label_names_json = Path(classification_csv), Path(label_names_json)
    output_json, detection_json = Path(output_json), Path(detection_json)
    if output_json.exists() and _same_file(output_json, detection_json):
        raise MegaClassifierError(
            f"{output_json}: is the input detections file; choose another output file, the input is never modified"
        )
    check_writable(output_json)
    names = load_label_index(label_names_json)
    class_taxa = load_taxonomy_file(taxonomy) if taxonomy is not None else None
    with ProbabilityCsvReader(classification_csv) as reader:
        if (label is not None or relative_conf) and not reader.has_label:
            raise InputFileError(
                classification_csv, f'no "{LABEL_COLUMN}" column, which --label and --relative-conf need'
            )
        contains_preds = _check_columns(reader, names, label_names_json)
        if not contains_preds:
            if relative_conf:
                raise InputFileError(classification_csv, "no probability columns, which --relative-conf needs")
            logger.info("%s has no probability columns; merging labels only", classification_csv)
        categories = {str(i): name for i, name in enumerate(names)}
        if reader.has_label:
            categories.update({str(LABEL_ID_OFFSET + i): f"label: {name}" for i, name in enumerate(names)})

        results = load_detections(detection_json)
        rules = _RowRules(contains_preds, threshold, max_classifications, label, relative_conf)
        if ensemble is not None:
            rules = _ensemble_rules(ensemble, names, label_names_json, rules)
        rows = _csv_rows(reader, names, rules, progress=progress)
        summary = merge_rows(
            results,
            rows,
            classifier_name=classifier_name,
            classification_categories=categories,
            typical_classification_threshold=typical_classification_threshold,
            datasets=datasets,
            class_taxa=class_taxa,
        )
    if ensemble is not None:
        if class_taxa is None:
            results.data["classification_category_descriptions"] = {
                str(i): lab for i, lab in enumerate(ensemble.class_labels)
            }
        summary.ensembled = ensemble.apply(results.data, threshold, max_classifications)
    write_detections(output_json, results.data)
    logger.debug("wrote %s", output_json)
    summary.output_json, summary.labels_only = output_json, not contains_preds
    return summary
