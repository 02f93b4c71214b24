"""The merge ``merge`` and ``run`` share: classification rows (or probability rows) onto loaded
results, then ``info``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from megaclassifier.constants import DEFAULT_MERGE_THRESHOLD
from megaclassifier.formats.detections import DetectionResults
from megaclassifier.labels.descriptions import Taxon, category_descriptions
from megaclassifier.merge.attach import (
    AttachCounts,
    Classifications,
    CropRef,
    attach_classifications,
    classification_list,
)
from megaclassifier.merge.info import set_classifier_info

if TYPE_CHECKING:
    from megaclassifier.postprocess.ensemble import EnsembleSummary


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
