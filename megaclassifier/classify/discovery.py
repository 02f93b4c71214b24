"""Finding the crops to classify, in the order their rows are written.

With a MegaDetector results file (``--detections-json``), as the reference:
images in JSON order, those with a ``detections`` list; for each detection
index ``i`` (every category, no threshold) the crop key
``{file}___crop{i:02d}_{detector}.jpg`` is kept when that crop exists under the
crops folder. ``detector`` is ``info.detector``, or ``unknown`` when the file
names none (as ``crop`` does); images marked ``"is_ground_truth": true`` have
crops without the detector suffix, as ``crop`` names them. Crop keys keep the
JSON's own slashes, which is what ``merge`` needs::

    cam1/IMG_0001.JPG___crop00_md_v5a.0.0.pt.jpg
    cam1/IMG_0001.JPG___crop02_md_v5a.0.0.pt.jpg

Without it: every ``.jpg``, ``.jpeg`` and ``.png`` file below the crops
folder (any letter case; names starting with ``.`` are skipped), as
forward-slash paths relative to it, sorted::

    a.jpg
    sub/b.jpg
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from megaclassifier.constants import UNKNOWN_DETECTOR
from megaclassifier.errors import InputFileError
from megaclassifier.formats.detections import load_detections
from megaclassifier.formats.naming import crop_filename, crop_path, safe_relative_path
from megaclassifier.formats.videos import frame_problem, is_video_entry

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


class PackedStrings:
    """An immutable list of strings in one bytes buffer.

    Worker processes share it without touching a Python object per string,
    so their memory does not grow with the number of crops.
    """

    def __init__(self, strings: Iterable[str]) -> None:
        encoded = [s.encode("utf-8", "surrogateescape") for s in strings]
        self._offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(b) for b in encoded], out=self._offsets[1:])
        self._data = b"".join(encoded)

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def __getitem__(self, index: int) -> str:
        start, end = self._offsets[index], self._offsets[index + 1]
        return self._data[start:end].decode("utf-8", "surrogateescape")

    def __iter__(self):  # noqa: ANN204 - a generator of str
        return (self[i] for i in range(len(self)))


@dataclass
class CropList:
    """The crops to classify, in output order.

    Attributes:
        crops_dir: the crops folder.
        keys: crop keys, as written to the ``path`` column.
        from_detections: keys are MegaDetector crop keys (placed with
            :func:`~megaclassifier.formats.naming.crop_path`) rather than relative paths.
    """

    crops_dir: Path
    keys: PackedStrings
    from_detections: bool

    def __len__(self) -> int:
        return len(self.keys)

    def path(self, index: int) -> Path:
        """The file of crop ``index``."""
        key = self.keys[index]
        if self.from_detections:
            return Path(self.crops_dir, *safe_relative_path(key).parts)
        return Path(self.crops_dir, *key.split("/"))


def discover_crops(crops_dir: str | Path, *, detections_json: str | Path | None = None) -> CropList:
    """List the crops to classify (see the module docstring for the order).

    Raises:
        InputFileError: the crops folder is missing, the detections file is unusable,
            or no crop is found.
    """
    crops_dir = Path(crops_dir)
    if not crops_dir.is_dir():
        problem = "is a file, not a folder of crops" if crops_dir.exists() else "no such folder"
        raise InputFileError(crops_dir, problem)
    if detections_json is None:
        keys = _walk(crops_dir)
        if not keys:
            raise InputFileError(crops_dir, "no crops found (no .jpg, .jpeg or .png files below it)")
    else:
        keys = _from_detections(crops_dir, detections_json)
        if not keys:
            raise InputFileError(
                crops_dir,
                f"none of the crops of {detections_json} are here; run `megaclassifier crop` with that file first",
            )
    return CropList(crops_dir, PackedStrings(keys), detections_json is not None)


def _walk(crops_dir: Path) -> list[str]:
    found: list[str] = []
    for root, dirs, files in os.walk(crops_dir):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        rel = Path(root).relative_to(crops_dir).parts
        for name in files:
            if not name.startswith(".") and name.lower().endswith(IMAGE_SUFFIXES):
                found.append("/".join((*rel, name)))
    found.sort()
    return found


def _from_detections(crops_dir: Path, detections_json: str | Path) -> list[str]:
    results = load_detections(detections_json)
    detector = results.detector
    if detector is None:
        detector = UNKNOWN_DETECTOR
        logger.warning(
            '%s names no detector (info.detector); looking for crops named "..._%s.jpg", as crop does',
            detections_json,
            detector,
        )
    keys: list[str] = []
    seen: set[str] = set()
    for image in results.successful_images():
        file = image["file"]
        name_detector = None if image.get("is_ground_truth") is True else detector
        video = is_video_entry(image)
        for index, detection in enumerate(image["detections"]):
            frame = detection.get("frame_number") if video and frame_problem(detection) is None else None
            key = crop_filename(file, index, name_detector, frame)
            if key not in seen and crop_path(crops_dir, file, index, name_detector, frame).is_file():
                seen.add(key)
                keys.append(key)
    return keys
