"""Attaching classification rows to the detections they belong to: by crop name or by (file,
detection index), counting what matched, what did not and what went stale.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from megaclassifier.constants import DEFAULT_MERGE_THRESHOLD
from megaclassifier.formats.detections import DetectionResults
from megaclassifier.formats.naming import parse_crop_filename

logger = logging.getLogger(__name__)


#: How many unmatched rows are named in the log.
LOGGED_EXAMPLES = 5


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
    _forget_earlier_classes(images)
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


#: per-detection fields of an earlier classification besides ``classifications`` (a SpeciesNet
#: predictions.json has them): their class IDs and rules belong to the categories a merge replaces.
_EARLIER_CLASS_FIELDS = ("raw_classifications", "classification_source")


def _forget_earlier_classes(images: list[dict[str, Any]]) -> None:
    """Remove :data:`_EARLIER_CLASS_FIELDS` from every detection, before the rows are attached."""
    removed = 0
    for image in images:
        for det in image.get("detections") or []:
            for key in _EARLIER_CLASS_FIELDS:
                removed += det.pop(key, None) is not None
    if removed:
        logger.warning("removed %d raw_classifications and classification_source fields of an earlier "
                       "classification, which named the earlier categories", removed)  # fmt: skip


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
            "\n  ".join(problems[:LOGGED_EXAMPLES]),
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
