"""Merge classifier probabilities into MegaDetector results (``megaclassifier merge``).

:func:`merge_classifications` is the whole command: CSV and label index in,
merged MegaDetector JSON out. ``run`` reuses the pieces:
:func:`classification_list` (one crop's probabilities to a ``classifications``
list), :func:`merge_probabilities` (in-memory rows onto loaded results), and
below it :func:`attach_classifications` and :func:`set_classifier_info`.
"""

from megaclassifier.merge.merge import (
    LABEL_ID_OFFSET,
    MIN_FORMAT_VERSION,
    AttachCounts,
    MergeSummary,
    attach_classifications,
    classification_list,
    merge_classifications,
    merge_probabilities,
    round_confidence,
    set_classifier_info,
)

__all__ = [
    "LABEL_ID_OFFSET",
    "MIN_FORMAT_VERSION",
    "AttachCounts",
    "MergeSummary",
    "attach_classifications",
    "classification_list",
    "merge_classifications",
    "merge_probabilities",
    "round_confidence",
    "set_classifier_info",
]
