"""MegaDetector batch-output JSON: the one module that reads and writes it.

Every format version from 1.0 to 1.6 is read. A typical file::

    {
     "info": {"format_version": "1.4", "detector": "md_v5a.0.0.pt"},
     "detection_categories": {"1": "animal", "2": "person", "3": "vehicle"},
     "images": [
      {"file": "cam1/IMG_0001.JPG",
       "detections": [{"category": "1", "conf": 0.93, "bbox": [0.1, 0.2, 0.3, 0.4]}]},
      {"file": "cam1/IMG_0002.JPG", "failure": "image access failure", "detections": null}
     ]
    }

``bbox`` is ``[x_min, y_min, width, height]`` normalised to the image as
displayed (after EXIF orientation). A detection without ``conf`` is a
ground-truth box. Older files may lack ``info`` or ``info.detector``, carry
per-image ``max_detection_conf`` or ``meta``, video fields, ``\\`` in ``file``
or absolute paths: all are accepted and preserved.

Files are written with indent 1, ASCII-escaped, key order and unknown fields
preserved, atomically.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from megaclassifier.errors import InputFileError
from megaclassifier.formats.atomic import write_json_atomic
from megaclassifier.formats.json_input import read_json_and_bytes
from megaclassifier.formats.md_format import is_finite_number


@dataclass
class DetectionResults:
    """A validated MegaDetector results file, kept as its raw JSON object.

    Attributes:
        path: where it was read from.
        data: the whole JSON object; edits to it are written back by
            :func:`write_detections`.
        sha256: the file's SHA-256, taken from the bytes as they were read (empty when not read from a file).
    """

    path: Path
    data: dict[str, Any]
    sha256: str = ""

    @property
    def images(self) -> list[dict[str, Any]]:
        """The ``images`` list."""
        return self.data["images"]

    @property
    def info(self) -> dict[str, Any]:
        """The ``info`` object (empty when the file has none)."""
        info = self.data.get("info")
        return info if isinstance(info, dict) else {}

    @property
    def detector(self) -> str | None:
        """``info.detector``, or None when the file does not name one."""
        detector = self.info.get("detector")
        return str(detector) if detector is not None else None

    @property
    def detection_categories(self) -> dict[str, str]:
        """Category ID string to name."""
        return self.data.get("detection_categories") or {}

    def files_missing_detections(self) -> list[str]:
        """The ``file`` of each image without a ``detections`` list (failed or incomplete), in order."""
        return [image["file"] for image in self.images if not isinstance(image.get("detections"), list)]

    def successful_images(self) -> Iterator[dict[str, Any]]:
        """Images whose ``detections`` is a list (failures and missing lists are left out)."""
        for image in self.images:
            if isinstance(image.get("detections"), list):
                yield image


def load_detections(path: str | Path) -> DetectionResults:
    """Read and validate a MegaDetector results file (or a SpeciesNet predictions.json, converted).

    See :mod:`megaclassifier.formats.predictions_json` for the conversion.

    Raises:
        InputFileError: the file is missing, not JSON, or not a MegaDetector
            results file; the message names the file and the first problem.
    """
    path = Path(path)
    data, raw = read_json_and_bytes(path, hint="; is this a MegaDetector output file?")
    from megaclassifier.formats.predictions_json import as_results  # it uses this module's checks

    data = as_results(data, path)
    validate_detections(data, path)
    return DetectionResults(path, data, hashlib.sha256(raw).hexdigest())


def _image_label(i: int, image: dict[str, Any]) -> str:
    """``images[3] ("cam1/a.jpg")``; quotes, backslashes and control characters escaped as JSON does."""
    return f"images[{i}] ({json.dumps(image['file'], ensure_ascii=False)})"


def validate_detections(data: Any, path: str | Path) -> None:
    """Check the structure that the pipeline relies on; raise on the first problem.

    Each ``file`` may appear once: crop names, probability rows and merged
    classifications are keyed by it, so a repeated entry would receive another
    entry's classifications.
    """
    hint = "; is this a MegaDetector output file?"
    if not isinstance(data, dict):
        raise InputFileError(path, f"top level is {type(data).__name__}, not a JSON object{hint}")
    if not isinstance(data.get("images"), list):
        raise InputFileError(path, f'no "images" list{hint}')
    if "info" in data and not isinstance(data["info"], dict):
        raise InputFileError(path, '"info" is not an object')
    categories = data.get("detection_categories", {})
    if not isinstance(categories, dict) or not all(isinstance(v, str) for v in categories.values()):
        raise InputFileError(path, '"detection_categories" is not an object of ID to name strings')
    first_entry: dict[str, int] = {}
    for i, image in enumerate(data["images"]):
        check_image(i, image, path)
        earlier = first_entry.setdefault(image["file"], i)
        if earlier != i:
            raise InputFileError(
                path,
                f"images[{i}] repeats the file {json.dumps(image['file'])} of images[{earlier}]; each file may "
                "appear once (combine their detections into one entry)",
            )


def check_image(i: int, image: Any, path: str | Path) -> None:
    """Check one ``images`` entry (``file``, and each detection's ``category``, ``bbox`` and ``conf``)."""
    if not isinstance(image, dict):
        raise InputFileError(path, f"images[{i}] is not an object")
    if not isinstance(image.get("file"), str) or not image["file"]:
        raise InputFileError(path, f'images[{i}] has no "file"')
    detections = image.get("detections")
    if detections is None:
        return
    if not isinstance(detections, list):
        raise InputFileError(path, f'{_image_label(i, image)}: "detections" is not a list')
    for j, det in enumerate(detections):
        _check_detection(det, f"{_image_label(i, image)} detection {j}", path)


def _check_detection(det: Any, where: str, path: str | Path) -> None:
    if not isinstance(det, dict):
        raise InputFileError(path, f"{where} is not an object")
    for key in ("category", "bbox"):
        if key not in det:
            raise InputFileError(path, f'{where} has no "{key}"')
    bbox = det["bbox"]
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(is_finite_number(v) for v in bbox)):
        raise InputFileError(path, f'{where}: "bbox" must be four finite numbers, got {json.dumps(bbox)}')
    if "conf" in det and not is_finite_number(det["conf"]):
        raise InputFileError(path, f'{where}: "conf" is not a number: {json.dumps(det["conf"])}')


def write_detections(path: str | Path, data: dict[str, Any]) -> None:
    """Write a MegaDetector results object: indent 1, ASCII-escaped, atomically."""
    write_json_atomic(path, data, indent=1, ensure_ascii=True)
