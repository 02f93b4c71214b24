"""Merge classifier probabilities into MegaDetector results (``megaclassifier merge``).

:func:`merge_classifications` is the whole command: CSV and label index in,
merged MegaDetector JSON out. :func:`merge_rows` is the merge itself, which
``merge`` and ``run`` both go through: rows of ``classifications`` lists (made
by :func:`classification_list` from one crop's probabilities) onto loaded
results, then ``info``. :func:`merge_probabilities` takes probability rows
instead, for library callers.
"""

from megaclassifier.merge.attach import (
    AttachCounts,
    Classifications,
    CropRef,
    attach_classifications,
    classification_list,
    round_confidence,
)
from megaclassifier.merge.info import MIN_FORMAT_VERSION, set_classifier_info
from megaclassifier.merge.merge import LABEL_ID_OFFSET, merge_classifications
from megaclassifier.merge.rows import MergeSummary, merge_probabilities, merge_rows

__all__ = [
    "LABEL_ID_OFFSET",
    "MIN_FORMAT_VERSION",
    "AttachCounts",
    "Classifications",
    "CropRef",
    "MergeSummary",
    "attach_classifications",
    "classification_list",
    "merge_classifications",
    "merge_probabilities",
    "merge_rows",
    "round_confidence",
    "set_classifier_info",
]
