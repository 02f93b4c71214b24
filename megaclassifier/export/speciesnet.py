"""``export --format speciesnet``: a results file as SpeciesNet 5.0.6's ``predictions.json``.

SpeciesNet's own tools (resuming a run, ``ensemble_from_past_runs``) and MegaDetector's
converter (``generate_md_results_from_predictions_json``) read the file. It is
``{"info": {"format_version": "20261015"}, "predictions": [...]}``, one prediction per image
in the results' order (see :mod:`megaclassifier.formats.predictions_json` for the layout):

* ``filepath``: the image's ``file``, after ``--images-dir`` when given (SpeciesNet names
  images by the path it opened them by);
* ``detections``: most confident first (SpeciesNet's order), each with ``category``,
  ``label`` (``animal``, ``human`` for MegaDetector's ``person``, ``vehicle``), ``conf`` and
  ``bbox``; a classified box (one with ``classifications``) also has
  ``raw_classifications`` (``{"classes": [...], "scores": [...]}``, from the detection's
  ``raw_classifications``, else its ``classifications``, most confident first) and
  ``processed_classification`` (``{"class", "score", "source"}``: the first of its
  ``classifications``; ``source`` its ``classification_source``, else ``classifier``);
* ``failures``: ``["DETECTOR"]`` for a failed image (or the list a converted
  predictions.json held); ``country``, ``admin1_region``, ``latitude``, ``longitude`` and
  ``model_version`` when the image has them.

Classes are written as SpeciesNet's seven-token labels: the class's
``classification_category_descriptions`` string when it has seven tokens; else one made from
its taxon (a five-token description) or, for a class that is no taxon, its name
(``blank``/``empty``, ``human``/``person``, ``vehicle`` and ``animal`` become SpeciesNet's own
labels for them). Numbers are written as the results hold them; the file is written atomically.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from megaclassifier.errors import InputFileError
from megaclassifier.formats.atomic import write_json_atomic
from megaclassifier.formats.detections import DetectionResults
from megaclassifier.formats.md_format import is_finite_number
from megaclassifier.formats.predictions_json import (
    ANIMAL,
    BLANK,
    FAILURE_PREFIX,
    FORMAT_VERSION,
    HUMAN,
    IMAGE_FIELDS,
    VEHICLE,
)
from megaclassifier.labels.descriptions import Taxon, non_taxon, parse_description

#: SpeciesNet's labels of classes that are no taxon, by their (lower-case) name.
SPECIAL_LABELS = {"blank": BLANK, "empty": BLANK, "human": HUMAN, "person": HUMAN, "vehicle": VEHICLE,
                  "animal": ANIMAL}  # fmt: skip
_LOCATION = tuple(key for key in IMAGE_FIELDS if key != "model_version")


@dataclass
class SpeciesNetCounts:
    """What :func:`write_predictions_json` wrote."""

    images: int = 0
    detections: int = 0
    classified: int = 0
    failed: int = 0


def speciesnet_label(name: str, description: Any) -> str:
    """The seven-token label of a class of this name and ``classification_category_descriptions`` string."""
    text = description.split("|")[0].strip() if isinstance(description, str) else ""
    if len(text.split(";")) == 7:
        return text
    taxon = parse_description(text) if text else None
    if taxon is not None and taxon.is_taxon:
        return Taxon(taxon.tokens, taxon.common or name.strip().lower()).description()
    return SPECIAL_LABELS.get(name.strip().lower()) or non_taxon(name).description()


def write_predictions_json(
    results: DetectionResults, out: str | Path, *, images_dir: str | Path | None = None
) -> SpeciesNetCounts:
    """Write ``results`` as a SpeciesNet 5.0.6 predictions.json at ``out`` (atomically).

    Raises:
        InputFileError: a detection without ``conf`` (a ground-truth box: SpeciesNet needs one),
            or classifications naming a class that is not in ``classification_categories``.
    """
    names = {str(k): str(v) for k, v in (results.data.get("classification_categories") or {}).items()}
    descriptions = {str(k): v for k, v in (results.data.get("classification_category_descriptions") or {}).items()}
    labels = {cid: speciesnet_label(name, descriptions.get(cid)) for cid, name in names.items()}
    categories = results.detection_categories
    counts = SpeciesNetCounts()
    predictions = []
    for i, image in enumerate(results.images):
        where = f'images[{i}] ("{image["file"]}")'
        filepath = Path(images_dir, image["file"]).as_posix() if images_dir is not None else image["file"]
        prediction: dict[str, Any] = {"filepath": filepath}
        detections = image.get("detections")
        if image.get("failure") or not isinstance(detections, list):
            prediction["failures"] = _failures(image.get("failure"))
            counts.failed += 1
        prediction.update((key, image[key]) for key in _LOCATION if key in image)
        if isinstance(detections, list) and "failures" not in prediction:
            ranked = sorted(enumerate(detections), key=lambda pair: -_conf(pair[1], pair[0], where, results))
            prediction["detections"] = [_detection(det, f"{where} detection {j}", categories, labels, results)
                                         for j, det in ranked]  # fmt: skip
            counts.detections += len(ranked)
            counts.classified += sum("raw_classifications" in det for det in prediction["detections"])
        if "model_version" in image:
            prediction["model_version"] = image["model_version"]
        predictions.append(prediction)
    counts.images = len(predictions)
    write_json_atomic(out, {"info": {"format_version": FORMAT_VERSION}, "predictions": predictions})
    return counts


def _failures(failure: Any) -> list[str]:
    """SpeciesNet's ``failures`` of a failed image: those a converted predictions.json held, else ``DETECTOR``."""
    if isinstance(failure, str) and failure.startswith(FAILURE_PREFIX):
        kept = [f.strip() for f in failure[len(FAILURE_PREFIX) :].split(",") if f.strip()]
        if kept:
            return kept
    return ["DETECTOR"]


def _conf(det: dict[str, Any], j: int, where: str, results: DetectionResults) -> float:
    conf = det.get("conf")
    if conf is None:
        raise InputFileError(
            results.path, f"{where} detection {j} has no conf (a ground-truth box); SpeciesNet's predictions need one"
        )
    return float(conf)


def _detection(
    det: dict[str, Any], where: str, categories: dict[str, str], labels: dict[str, str], results: DetectionResults
) -> dict[str, Any]:
    category = str(det["category"])
    name = categories.get(category, category)
    out: dict[str, Any] = {"category": category, "label": "human" if name == "person" else name,
                           "conf": float(det["conf"]), "bbox": det["bbox"]}  # fmt: skip
    classes = _pairs(det.get("classifications"), "classifications", where, labels, results)
    if not classes:
        return out
    raw = _pairs(det.get("raw_classifications"), "raw_classifications", where, labels, results) or classes
    raw = sorted(raw, key=lambda c: -c[1])
    source = det.get("classification_source") or "classifier"
    if not isinstance(source, str):
        raise InputFileError(results.path, f'{where}: "classification_source" is not a string')
    out["raw_classifications"] = {"classes": [labels[c] for c, _ in raw], "scores": [s for _, s in raw]}
    out["processed_classification"] = {"class": labels[classes[0][0]], "score": classes[0][1], "source": source}
    return out


def _pairs(
    value: Any, key: str, where: str, labels: dict[str, str], results: DetectionResults
) -> list[tuple[str, float]]:
    """``[[class ID, score], ...]`` checked: known IDs, finite scores."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(
        isinstance(c, list) and len(c) >= 2 and isinstance(c[0], str) and is_finite_number(c[1]) for c in value
    ):
        raise InputFileError(results.path, f'{where}: "{key}" must be [["<class id>", score], ...]')
    for cid, *_ in value:
        if cid not in labels:
            raise InputFileError(results.path, f'{where}: class "{cid}" is not in "classification_categories"')
    return [(c[0], c[1]) for c in value]
