"""Results of ``merge`` or ``run`` (or a plain MegaDetector file) as one row per detection.

``report`` and ``export`` read results through this module. A detection
becomes a :class:`DetectionRow`; its classes come from ``classifications``
(``[[class_id, p], ...]``), most confident first::

    {"file": "cam1/IMG_0001.JPG", "detections": [
     {"category": "1", "conf": 0.93, "bbox": [0.1, 0.2, 0.3, 0.4],
      "classifications": [["0", 0.62], ["1", 0.31]]}]}

gives ``DetectionRow(file="cam1/IMG_0001.JPG", index=0, category="animal",
conf=0.93, bbox=(0.1, 0.2, 0.3, 0.4), top_class="deer", top_score=0.62,
second_class="elk", second_score=0.31)``. A detection without
``classifications`` (every detection of a plain MegaDetector file) has no
classes; its *label* is then its detection category (``animal``,
``person``, ``vehicle``) and its *score* its detection ``conf``.

Detections below ``threshold`` are left out (one without ``conf``, a
ground-truth box, is kept). Images with a ``failure`` or without a
``detections`` list are recorded as failed, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from megaclassifier.constants import DEFAULT_REVIEW_THRESHOLD
from megaclassifier.formats.detections import DetectionResults, load_detections

#: Default detection-confidence threshold of ``report`` and ``export``.
DEFAULT_DETECTION_THRESHOLD = DEFAULT_REVIEW_THRESHOLD


@dataclass(frozen=True, slots=True)
class DetectionRow:
    """One detection at or above the threshold.

    Attributes:
        file: the image's ``file`` value.
        index: the detection's position in the image's ``detections`` list.
        category: the detection category name (``animal``; the ID when unnamed).
        conf: the detection confidence (None for a ground-truth box).
        bbox: ``(x_min, y_min, width, height)``, normalised.
        top_class, top_score: the most confident class, or None when unclassified.
        second_class, second_score: the runner-up class, or None.
        frame: the detection's ``frame_number`` in a video entry, else None.
    """

    file: str
    index: int
    category: str
    conf: float | None
    bbox: tuple[float, float, float, float]
    top_class: str | None = None
    top_score: float | None = None
    second_class: str | None = None
    second_score: float | None = None
    frame: int | None = None

    @property
    def label(self) -> str:
        """The top class, or the detection category when unclassified."""
        return self.top_class if self.top_class is not None else self.category

    @property
    def score(self) -> float:
        """The top class's score, or the detection confidence when unclassified (1.0 without one)."""
        if self.top_score is not None:
            return self.top_score
        return self.conf if self.conf is not None else 1.0


@dataclass
class ResultsTable:
    """A results file flattened to detection rows.

    Attributes:
        path: the results file.
        rows: detections at or above the threshold, in file order.
        images: ``file`` of every image with a detections list, in file order.
        failures: ``file`` -> reason, for images without a detections list.
        classifier: ``info.classifier`` (None for a plain MegaDetector file).
        detector: ``info.detector``, or None.
        classified: whether the file has ``classification_categories``.
        descriptions: class name -> its ``classification_category_descriptions`` string, when the file has them.
    """

    path: Path
    rows: list[DetectionRow] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    classifier: str | None = None
    detector: str | None = None
    classified: bool = False
    descriptions: dict[str, str] = field(default_factory=dict)


def image_folder(file: str) -> str:
    """The folder of an image ``file`` (``\\`` separates folders too); ``.`` for the root."""
    parent = PurePosixPath(file.replace("\\", "/")).parent.as_posix()
    return parent if parent not in ("", "/") else "."


def folder_key(folder: str) -> str:
    """A folder as a user writes it (``siteA\\cam1``, ``./siteA/cam1/``) as :func:`image_folder` gives it.

    ``\\`` separates folders, as on Windows; ``.`` and empty parts are dropped; an
    absolute folder keeps its leading ``/``; nothing left is the root, ``.``.
    """
    text = folder.strip().replace("\\", "/")
    parts = [p for p in text.split("/") if p not in ("", ".")]
    return ("/" if text.startswith("/") else "") + "/".join(parts) if parts else "."


def read_results_table(path: str | Path, *, threshold: float = DEFAULT_DETECTION_THRESHOLD) -> ResultsTable:
    """Read a results file into a :class:`ResultsTable`.

    Raises:
        InputFileError: the file is missing or not a MegaDetector results file.
    """
    results = load_detections(path)
    info = results.info
    classes = results.data.get("classification_categories")
    table = ResultsTable(
        results.path,
        classifier=str(info["classifier"]) if info.get("classifier") is not None else None,
        detector=results.detector,
        classified=isinstance(classes, dict),
    )
    names = {str(k): str(v) for k, v in classes.items()} if isinstance(classes, dict) else {}
    descriptions = results.data.get("classification_category_descriptions")
    if isinstance(descriptions, dict):
        table.descriptions = {names[str(k)]: str(v) for k, v in descriptions.items() if str(k) in names}
    for image in results.images:
        detections = image.get("detections")
        if image.get("failure") or not isinstance(detections, list):
            table.failures[image["file"]] = str(image.get("failure") or "no detections list")
            continue
        table.images.append(image["file"])
        table.rows.extend(_image_rows(results, image["file"], detections, names, threshold))
    return table


def _image_rows(
    results: DetectionResults, file: str, detections: list[dict[str, Any]], names: dict[str, str], threshold: float
) -> list[DetectionRow]:
    categories = results.detection_categories
    rows = []
    for index, det in enumerate(detections):
        conf = det.get("conf")
        if conf is not None and conf < threshold:
            continue
        category = str(det["category"])
        ranked = _ranked_classes(det.get("classifications"), names)
        top, second = (ranked + [(None, None), (None, None)])[:2]
        rows.append(
            DetectionRow(
                file, index, categories.get(category, category),
                float(conf) if conf is not None else None, tuple(float(v) for v in det["bbox"]),  # type: ignore[arg-type]
                top[0], top[1], second[0], second[1], _frame_number(det),
            )
        )  # fmt: skip
    return rows


def _frame_number(detection: dict[str, Any]) -> int | None:
    """A video detection's ``frame_number`` (a whole number >= 0), else None."""
    frame = detection.get("frame_number")
    return frame if isinstance(frame, int) and not isinstance(frame, bool) and frame >= 0 else None


def _ranked_classes(classifications: Any, names: dict[str, str]) -> list[tuple[str, float]]:
    """``[(name, score), ...]`` most confident first (ties keep their order)."""
    if not isinstance(classifications, list):
        return []
    pairs = [(names.get(str(c[0]), str(c[0])), float(c[1])) for c in classifications if len(c) >= 2]
    return sorted(pairs, key=lambda pair: -pair[1])
