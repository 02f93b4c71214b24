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
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from megaclassifier.constants import DEFAULT_MERGE_THRESHOLD, DEFAULT_TYPICAL_CLASSIFICATION_THRESHOLD
from megaclassifier.errors import InputFileError, MegaClassifierError
from megaclassifier.formats.atomic import check_writable
from megaclassifier.formats.detections import DetectionResults, load_detections, write_detections
from megaclassifier.formats.naming import parse_crop_filename
from megaclassifier.formats.probabilities import LABEL_COLUMN, ProbabilityCsvReader, load_label_index
from megaclassifier.labels.descriptions import Taxon, category_descriptions, load_taxonomy_file

if TYPE_CHECKING:
    from megaclassifier.postprocess.ensemble import Ensemble, EnsembleSummary

logger = logging.getLogger(__name__)

#: Category IDs of ground-truth label pseudo-classes are ``LABEL_ID_OFFSET + index``.
LABEL_ID_OFFSET = 1_000_000
#: The oldest ``format_version`` MegaDetector's validator accepts; older files are raised to it.
MIN_FORMAT_VERSION = "1.3"
#: ``classification_completion_time`` format.
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
#: How many unmatched rows are named in the log.
_EXAMPLES = 5

#: A classification list: ``[[class_id, confidence], ...]``.
Classifications = list[list[Any]]
#: Where a row goes: a crop key (``file___cropNN_detector.jpg``) or ``(file, detection index)``.
CropRef = str | tuple[str, int]


@dataclass
class AttachCounts:
    """What :func:`attach_classifications` did with its rows.

    Attributes:
        rows: rows seen.
        rows_merged: rows written onto a detection (a repeated crop counts each time; the last wins).
        detections_classified: distinct detections that got ``classifications``.
        rows_excluded: rows for images left out by ``datasets``.
        rows_unknown_image: rows whose image is not in the detections file.
        rows_bad_index: rows whose detection index is past the image's detections (or it has none).
        rows_bad_name: rows whose path is not a crop name.
        images_written: images in the output.
        stale_classifications_removed: ``classifications`` of an earlier merge removed from detections
            that got no row here (their IDs belonged to the old categories).
    """

    rows: int = 0
    rows_merged: int = 0
    detections_classified: int = 0
    rows_excluded: int = 0
    rows_unknown_image: int = 0
    rows_bad_index: int = 0
    rows_bad_name: int = 0
    images_written: int = 0
    stale_classifications_removed: int = 0

    @property
    def rows_unmatched(self) -> int:
        """Rows that matched no detection (unknown image, bad index, not a crop name)."""
        return self.rows_unknown_image + self.rows_bad_index + self.rows_bad_name

    @property
    def rows_duplicate(self) -> int:
        """Rows that replaced an earlier row's classifications of the same detection."""
        return self.rows_merged - self.detections_classified


@dataclass
class MergeSummary(AttachCounts):
    """What :func:`merge_classifications` wrote.

    Attributes:
        output_json: the file written.
        format_version: the output's ``info.format_version``.
        labels_only: the CSV had no probability columns, only ``label``.
        ensembled: what ``--ensemble`` did, or None.
    """

    output_json: Path = field(default_factory=Path)
    format_version: str = ""
    labels_only: bool = False
    ensembled: EnsembleSummary | None = None


def round_confidence(values: np.ndarray) -> np.ndarray:
    """Round to 4 decimals as the reference does: half-even on the scaled value.

    ``round(np.float64(p), 4)``, so 0.12345 becomes 0.1234 (plain Python's
    ``round`` gives 0.1235).
    """
    return np.round(np.asarray(values, dtype=np.float64), 4)


def classification_list(
    probs: np.ndarray,
    *,
    threshold: float = DEFAULT_MERGE_THRESHOLD,
    max_classifications: int | None = None,
) -> Classifications:
    """Turn one crop's class probabilities into a ``classifications`` list.

    Args:
        probs: shape (C,), the probability of class ``i`` at position ``i``.
        threshold: keep classes whose unrounded probability is at least this.
        max_classifications: keep only this many, the most confident first.

    Returns:
        ``[[str(i), round4(p_i)], ...]`` sorted by the rounded value,
        descending; equal values keep class order.
    """
    probs = np.asarray(probs, dtype=np.float64).reshape(-1)
    kept = np.flatnonzero(probs >= threshold)
    rounded = round_confidence(probs[kept])
    order = np.argsort(-rounded, kind="stable")
    if max_classifications is not None:
        order = order[:max_classifications]
    return [[str(i), p] for i, p in zip(kept[order].tolist(), rounded[order].tolist(), strict=True)]


def _dataset_of(file: str) -> str | None:
    """The part of ``file`` before its first ``/`` (or ``\\``); None without one."""
    head, sep, _ = file.replace("\\", "/").partition("/")
    return head if sep else None


def _resolve(ref: CropRef) -> tuple[str, int]:
    if isinstance(ref, tuple):
        return ref
    name = parse_crop_filename(ref)
    return name.file, name.index


def attach_classifications(
    results: DetectionResults,
    rows: Iterable[tuple[CropRef, Classifications]],
    *,
    datasets: Sequence[str] | None = None,
) -> AttachCounts:
    """Put each row's classifications on its detection, in place.

    Rows that match no detection are counted and the first few logged; they
    never stop the merge. ``classifications`` left from an earlier merge on
    detections without a row are removed, since the categories are replaced.

    Args:
        results: the loaded MegaDetector results; edited in place.
        rows: ``(crop, classifications)`` pairs; ``crop`` is a crop key or
            ``(file, detection index)``.
        datasets: keep only images whose ``file`` starts with one of these
            followed by ``/``; a ``file`` without ``/`` is in no dataset.
    """
    images, excluded = _select_datasets(results, datasets)
    by_file = {image["file"]: image for image in images}  # load_detections refuses repeated files
    counts = AttachCounts()
    touched: set[tuple[str, int]] = set()
    problems: list[str] = []
    for ref, classifications in rows:
        counts.rows += 1
        target = _find_detection(ref, by_file, excluded, counts, problems)
        if target is not None:
            file, index = target
            by_file[file]["detections"][index]["classifications"] = classifications
            counts.rows_merged += 1
            touched.add(target)
    counts.detections_classified = len(touched)
    counts.stale_classifications_removed = _remove_stale(images, touched)
    counts.images_written = len(images)
    _log_problems(counts, problems)
    return counts


def _select_datasets(
    results: DetectionResults, datasets: Sequence[str] | None
) -> tuple[list[dict[str, Any]], set[str]]:
    """Keep only the images of ``datasets`` (in place); return them and the files left out."""
    images = results.images
    if datasets is None:
        return images, set()
    wanted = {d.replace("\\", "/").strip("/") for d in datasets}  # -d siteA\ names siteA
    kept = [im for im in images if _dataset_of(im["file"]) in wanted]
    logger.info("--datasets keeps %d of %d images", len(kept), len(images))
    results.data["images"] = kept
    return kept, {im["file"] for im in images} - {im["file"] for im in kept}


def _find_detection(
    ref: CropRef, by_file: dict[str, dict[str, Any]], excluded: set[str], counts: AttachCounts, problems: list[str]
) -> tuple[str, int] | None:
    """The ``(file, index)`` of the detection a row belongs to; None (counted, described) when there is none."""
    try:
        file, index = _resolve(ref)
    except ValueError:
        counts.rows_bad_name += 1
        problems.append(f"{ref!r}: not a crop name (<file>___cropNN_<detector>.jpg)")
        return None
    image = by_file.get(file)
    if image is None:
        if file in excluded:
            counts.rows_excluded += 1
        else:
            counts.rows_unknown_image += 1
            problems.append(f"{ref!r}: image {file!r} is not in the detections file")
        return None
    detections = image.get("detections")
    if not isinstance(detections, list) or index >= len(detections):
        counts.rows_bad_index += 1
        have = len(detections) if isinstance(detections, list) else "no"
        problems.append(f"{ref!r}: detection {index} of {file!r}, which has {have} detections")
        return None
    return file, index


def _remove_stale(images: list[dict[str, Any]], touched: set[tuple[str, int]]) -> int:
    """Remove ``classifications`` of an earlier merge from detections that got no row; return how many."""
    removed = 0
    for image in images:
        for index, det in enumerate(image.get("detections") or []):
            if "classifications" in det and (image["file"], index) not in touched:
                del det["classifications"]
                removed += 1
    return removed


def _log_problems(counts: AttachCounts, problems: list[str]) -> None:
    if problems:
        logger.warning(
            "%d rows matched no detection and were skipped, e.g.:\n  %s",
            counts.rows_unmatched,
            "\n  ".join(problems[:_EXAMPLES]),
        )
    if counts.rows_duplicate:
        logger.warning(
            "%d rows repeated a crop already merged; the last row of each crop was kept", counts.rows_duplicate
        )
    if counts.stale_classifications_removed:
        logger.warning(
            "removed %d classifications of an earlier merge from detections with no row in this CSV",
            counts.stale_classifications_removed,
        )


def _version_number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def set_classifier_info(
    results: DetectionResults,
    *,
    classifier_name: str,
    classification_categories: dict[str, str],
    typical_classification_threshold: float | None = None,
    completion_time: datetime | None = None,
) -> str:
    """Set ``info`` and ``classification_categories`` after a merge; settle ``format_version``.

    ``info`` gets ``classifier``, ``classification_completion_time`` (now,
    local time) and ``classifier_metadata.typical_classification_threshold`` (given, else
    :data:`~megaclassifier.constants.DEFAULT_TYPICAL_CLASSIFICATION_THRESHOLD`); other keys are kept.
    ``classification_categories`` is replaced in place or added at the end.
    A format version below 1.3, or none, becomes ``"1.3"`` and integral
    ``conf`` values become floats; a numeric version becomes a string.

    Returns:
        The ``format_version`` written.
    """
    data = results.data
    if not isinstance(data.get("info"), dict):
        results.data = data = {"info": {}, **{k: v for k, v in data.items() if k != "info"}}
    info = data["info"]

    version = info.get("format_version")
    number = _version_number(version)
    if number is None and version is not None:
        logger.warning("%s: format_version %r is not a number; left as it is", results.path, version)
    elif number is None or number < float(MIN_FORMAT_VERSION):
        logger.info("format_version %s raised to %s", version, MIN_FORMAT_VERSION)
        info["format_version"] = MIN_FORMAT_VERSION
        converted = _float_confidences(results)
        if converted:
            logger.info("%d integral conf values written as floats", converted)
    elif not isinstance(version, str):
        info["format_version"] = str(version)

    info["classifier"] = classifier_name
    info["classification_completion_time"] = (completion_time or datetime.now()).strftime(TIME_FORMAT)
    if typical_classification_threshold is None:  # Timelapse's default threshold comes from here
        typical_classification_threshold = DEFAULT_TYPICAL_CLASSIFICATION_THRESHOLD
    info["classifier_metadata"] = {"typical_classification_threshold": typical_classification_threshold}
    data["classification_categories"] = dict(classification_categories)
    if data.pop("classification_category_descriptions", None) is not None:
        logger.warning("removed classification_category_descriptions, which described the earlier categories")
    return str(info.get("format_version"))


def _float_confidences(results: DetectionResults) -> int:
    converted = 0
    for image in results.images:
        for det in image.get("detections") or []:
            if type(det.get("conf")) is int:
                det["conf"] = float(det["conf"])
                converted += 1
    return converted


def merge_rows(
    results: DetectionResults,
    rows: Iterable[tuple[CropRef, Classifications]],
    *,
    classifier_name: str,
    classification_categories: dict[str, str],
    typical_classification_threshold: float | None = None,
    datasets: Sequence[str] | None = None,
    class_taxa: dict[str, Taxon] | None = None,
) -> MergeSummary:
    """The merge itself, for ``merge`` and ``run``: classifications onto detections, then ``info``.

    ``rows`` is consumed lazily, so a caller can stream them as they are computed.

    Args:
        results: the loaded MegaDetector results; edited in place (write them with
            :func:`~megaclassifier.formats.detections.write_detections`).
        rows: ``(crop, classifications)`` pairs, see :func:`attach_classifications`.
        classifier_name: goes to ``info.classifier``.
        classification_categories: the class IDs used in ``rows`` and their names.
        typical_classification_threshold: goes to ``info.classifier_metadata``.
        datasets: see :func:`attach_classifications`.
        class_taxa: class name -> taxon (:func:`~megaclassifier.labels.descriptions.load_taxonomy_file`):
            write ``classification_category_descriptions``.

    Returns:
        The counts and the ``format_version`` written; ``output_json`` is left for the caller.
    """
    counts = attach_classifications(results, rows, datasets=datasets)
    version = set_classifier_info(
        results,
        classifier_name=classifier_name,
        classification_categories=classification_categories,
        typical_classification_threshold=typical_classification_threshold,
    )
    if class_taxa is not None:
        descriptions = category_descriptions(classification_categories, class_taxa)
        results.data["classification_category_descriptions"] = descriptions
    return MergeSummary(**vars(counts), format_version=version)


def merge_probabilities(
    results: DetectionResults,
    rows: Iterable[tuple[CropRef, np.ndarray]],
    *,
    class_names: Sequence[str],
    classifier_name: str,
    threshold: float = DEFAULT_MERGE_THRESHOLD,
    typical_classification_threshold: float | None = None,
    datasets: Sequence[str] | None = None,
    max_classifications: int | None = None,
) -> AttachCounts:
    """Merge in-memory probability rows into loaded results: :func:`merge_rows` for library callers.

    Args:
        results: edited in place; write it with :func:`write_detections`.
        rows: ``(crop, probabilities)``; ``crop`` is a crop key or
            ``(file, detection index)``, probabilities are in ``class_names`` order.
        class_names: the classifier's class names, index order.
        classifier_name: goes to ``info.classifier``.
        threshold: see :func:`classification_list`.
        typical_classification_threshold: goes to ``info.classifier_metadata``.
        datasets: see :func:`attach_classifications`.
        max_classifications: see :func:`classification_list`.
    """
    lists = (
        (ref, classification_list(p, threshold=threshold, max_classifications=max_classifications)) for ref, p in rows
    )
    return merge_rows(
        results,
        lists,
        classifier_name=classifier_name,
        classification_categories={str(i): name for i, name in enumerate(class_names)},
        typical_classification_threshold=typical_classification_threshold,
        datasets=datasets,
    )


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
        more = f" and {len(items) - _EXAMPLES} more" if len(items) > _EXAMPLES else ""
        return ", ".join(f'"{x}"' for x in items[:_EXAMPLES]) + more

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


def enumerate_labels(labels: Sequence[str]) -> Iterator[tuple[str, str]]:
    """``(class ID, label)`` of a release's labels, in class order."""
    return ((str(i), label) for i, label in enumerate(labels))


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
            results.data["classification_category_descriptions"] = dict(enumerate_labels(ensemble.class_labels))
        summary.ensembled = ensemble.apply(results.data, threshold, max_classifications)
    write_detections(output_json, results.data)
    logger.debug("wrote %s", output_json)
    summary.output_json, summary.labels_only = output_json, not contains_preds
    return summary
