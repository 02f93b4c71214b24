"""The classifier's part of a MegaDetector file's ``info``: its name, completion time, typical
threshold, and the format version raised to one MegaDetector's validator accepts.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from megaclassifier.constants import DEFAULT_TYPICAL_CLASSIFICATION_THRESHOLD
from megaclassifier.formats.detections import DetectionResults

logger = logging.getLogger(__name__)


#: The oldest ``format_version`` MegaDetector's validator accepts; older files are raised to it.
MIN_FORMAT_VERSION = "1.3"


#: ``classification_completion_time`` format.
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


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
