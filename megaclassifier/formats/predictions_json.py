"""SpeciesNet's ``predictions.json``, read as MegaDetector results.

Every reader of results files (``crop``, ``classify``, ``merge -j``, ``run``, ``smooth``,
``restrict``, ``rollup``, ``report``, ``export``) takes a SpeciesNet ``predictions.json``
too: :func:`megaclassifier.formats.detections.load_detections` and
:class:`megaclassifier.formats.detections_stream.StreamedResults` pass the JSON they have
already parsed through :func:`as_results`, which converts it in memory. A file is a
predictions.json when its top level is an object with ``predictions`` and no ``images``.

SpeciesNet 5.0.6 (``info.format_version`` ``20261015``) classifies each box::

    {"info": {"format_version": "20261015"},
     "predictions": [
      {"filepath": "/data/cam1/IMG_0001.JPG", "country": "USA",
       "detections": [
        {"category": "1", "label": "animal", "conf": 0.93, "bbox": [0.1, 0.2, 0.3, 0.4],
         "raw_classifications": {"classes": ["<uuid>;mammalia;carnivora;canidae;canis;familiaris;domestic dog",
                                             "<uuid>;mammalia;carnivora;canidae;canis;lupus;gray wolf"],
                                 "scores": [0.67, 0.2]},
         "processed_classification": {"class": "<uuid>;mammalia;carnivora;canidae;;;canine family",
                                      "score": 0.87, "source": "classifier+rollup_to_family"}}],
       "model_version": "4.0.1a"},
      {"filepath": "/data/cam1/IMG_0002.JPG", "failures": ["CLASSIFIER", "DETECTOR"]}]}

SpeciesNet up to 5.0.5 (files without per-box classifications) classified one box per image
and wrote the answer per image: ``classifications`` (``{"classes": [...], "scores": [...]}``),
``prediction``, ``prediction_score``, ``prediction_source``.

The conversion gives what MegaDetector's own converter
(``megadetector.utils.wi_taxonomy_utils.generate_md_results_from_predictions_json``) gives,
with three additions: the rule that fired, the standard detection categories, the
SpeciesNet per-image fields kept. Per box:

* ``classifications``: ``[[id, score]]``, the processed class (the ensemble's answer), else the
  top raw class; ``raw_classifications``: the raw classes, ``[[id, score], ...]``;
  ``classification_source``: the processed class's ``source`` (``classifier+geofence+rollup_to_family``).
* A legacy file's per-image answer goes on every box of the image, as MegaDetector does
  (``prediction_source`` is the source); so does a whole-image classifier's (the
  ``whole_image_classification`` pseudo-box, category ``0``, is dropped). Such an answer on an
  image without boxes becomes a whole-image box of category ``unknown``
  (``bbox`` ``[0, 0, 1, 1]``, ``conf`` the class's score), unless it is blank.
* A class in genus *Homo* (``homo species``) is written as ``human``, as MegaDetector does.

``classification_categories`` maps IDs (``"0"``, ``"1"``, ... in order of first appearance,
each box's raw classes before its processed class) to MegaDetector's names for the labels
(the common name, else ``genus species``, ``<genus> species``, ``<family> family``, ...);
``classification_category_descriptions`` keeps the seven-token labels. ``detection_categories``
is ``{"1": "animal", "2": "person", "3": "vehicle"}`` (SpeciesNet's ``human`` is MegaDetector's
``person``). An image with ``failures`` is a failed image (``"failure": "SpeciesNet failures:
CLASSIFIER, DETECTOR"``, ``"detections": null``), as MegaDetector's converter makes it.
``country``, ``admin1_region``, ``latitude``, ``longitude`` and ``model_version`` stay on the
image; ``info.classifier`` is ``SpeciesNet <model_version>``.

Paths stay as the file has them (absolute, as SpeciesNet writes them: ``report`` and ``crop``
find them whatever ``--images-dir`` says). Images keep their order, so ``images[i]`` in a
message is ``predictions[i]``.
"""

from __future__ import annotations

import json
from typing import Any

from megaclassifier.errors import InputFileError
from megaclassifier.formats.md_format import CURRENT_FORMAT_VERSION, is_finite_number

#: ``info.format_version`` of SpeciesNet 5.0.6's predictions.json (per-box classifications).
FORMAT_VERSION = "20261015"

BLANK = "f1856211-cfb7-4a5b-9158-c0f72fd09ee6;;;;;;blank"
ANIMAL = "1f689929-883d-4dae-958c-3d57ab5b6c16;;;;;;animal"
HUMAN = "990ae9dd-7a59-4344-afcb-1b7b21368000;mammalia;primates;hominidae;homo;sapiens;human"
VEHICLE = "e2895ed5-780b-48f6-8a11-9e27cb594511;;;;;;vehicle"

#: SpeciesNet's detection labels by category; category ``0`` is the whole-image pseudo-box.
SPECIESNET_LABELS = {"1": "animal", "2": "human", "3": "vehicle"}
WHOLE_IMAGE_CATEGORY = "0"
#: MegaDetector's names of the same categories.
DETECTION_CATEGORIES = {"1": "animal", "2": "person", "3": "vehicle"}
UNKNOWN_DETECTION = "unknown"

#: per-image fields of a prediction that MegaDetector's format has no place for: kept on the image.
IMAGE_FIELDS = ("country", "admin1_region", "latitude", "longitude", "model_version")
FAILURE_PREFIX = "SpeciesNet failures: "
_LEGACY_FIELDS = ("classifications", "prediction")
_LEVEL_SUFFIX = {4: " species", 3: " family", 2: " order", 1: " class", 0: " category"}
_SHAPE = "uuid;class;order;family;genus;species;common name"


def is_predictions_json(data: Any) -> bool:
    """Whether parsed JSON is a predictions.json: an object with ``predictions`` and no ``images``."""
    return isinstance(data, dict) and "predictions" in data and "images" not in data


def as_results(data: Any, path: Any) -> Any:
    """``data`` as MegaDetector results: converted when it is a predictions.json, else unchanged.

    Raises:
        InputFileError: a predictions.json that is malformed; the message names the file.
    """
    return predictions_to_results(data, path) if is_predictions_json(data) else data


def common_name(label: str) -> str:
    """MegaDetector's name of a seven-token label: the common name, else ``genus species``, ``<genus> species``, ...."""
    tokens = [t.strip() for t in label.strip().split(";")]
    if tokens[6]:
        return tokens[6]
    if tokens[5]:
        return f"{tokens[4]} {tokens[5]}" if tokens[4] else tokens[5]
    for level in (4, 3, 2, 1, 0):
        if tokens[level]:
            return tokens[level] + _LEVEL_SUFFIX[level]
    return "empty_prediction_string"


def is_human_genus(label: str) -> bool:
    """Whether a label is genus *Homo* or below, or ``homo species`` (MegaDetector writes these as ``human``)."""
    return "hominidae;homo" in label or "homo species" in label


def predictions_to_results(data: dict[str, Any], path: Any) -> dict[str, Any]:
    """Convert a parsed predictions.json into a MegaDetector results dict (see the module doc).

    ``data["predictions"]`` is consumed (each entry set to None once converted), so memory holds
    one copy of the results, not two.

    Raises:
        InputFileError: not a well-formed predictions.json; the message names the file and the first problem.
    """
    return _Converter(path).convert(data)


#: ``(classifications, raw_classifications, classification_source)`` of a box, each None when absent
_Classes = tuple[list[list[Any]] | None, list[list[Any]] | None, str | None]


def _json(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 80 else text[:77] + "..."


class _Converter:
    def __init__(self, path: Any) -> None:
        self.path = path
        self.ids: dict[str, str] = {}  # label -> class ID
        self.labels: list[str] = []  # class ID (as an int) -> label
        self.categories = dict(DETECTION_CATEGORIES)
        self.whole_image_boxes: list[dict[str, Any]] = []
        self.model_versions: list[str] = []

    def fail(self, message: str) -> InputFileError:
        return InputFileError(self.path, message)

    def convert(self, data: dict[str, Any]) -> dict[str, Any]:
        info = data.get("info", {})
        if not isinstance(info, dict):
            raise self.fail('"info" is not an object')
        predictions = data["predictions"]
        if not isinstance(predictions, list):
            raise self.fail('"predictions" is not a list; is this a SpeciesNet predictions.json?')
        images = []
        for i, prediction in enumerate(predictions):
            images.append(self.image(i, prediction))
            predictions[i] = None  # consumed: the parsed file and its conversion are not both held
        if self.whole_image_boxes:
            numbers = [int(k) for k in self.categories if k.isdigit()]
            unknown = str(max(numbers, default=0) + 1)
            self.categories[unknown] = UNKNOWN_DETECTION
            for det in self.whole_image_boxes:
                det["category"] = unknown
        version = info.get("format_version")
        described = f"format_version {version}" if version is not None else "no format_version"
        out_info: dict[str, Any] = {"format_version": CURRENT_FORMAT_VERSION}
        if self.ids:
            versions = sorted(set(self.model_versions))
            out_info["classifier"] = "SpeciesNet" + (f" {versions[0]}" if len(versions) == 1 else "")
        out_info["converted_from"] = f"SpeciesNet predictions.json ({described})"
        out: dict[str, Any] = {"info": out_info, "detection_categories": self.categories}
        if self.ids:
            out["classification_categories"] = {cid: common_name(label) for label, cid in self.ids.items()}
            out["classification_category_descriptions"] = {cid: label for label, cid in self.ids.items()}
        out["images"] = images
        return out

    def image(self, i: int, prediction: Any) -> dict[str, Any]:
        if not isinstance(prediction, dict):
            raise self.fail(f"predictions[{i}] is not an object")
        filepath = prediction.get("filepath")
        if not isinstance(filepath, str) or not filepath:
            raise self.fail(f'predictions[{i}] has no "filepath"')
        where = f"predictions[{i}] ({json.dumps(filepath, ensure_ascii=False)})"
        out: dict[str, Any] = {"file": filepath}
        version = prediction.get("model_version")
        if version is not None:
            if not isinstance(version, str):
                raise self.fail(f'{where}: "model_version" is not a string')
            self.model_versions.append(version)
        failures = prediction.get("failures")
        if failures is not None:
            if not isinstance(failures, list) or not all(isinstance(f, str) for f in failures):
                raise self.fail(f'{where}: "failures" is not a list of strings: {_json(failures)}')
            out["failure"] = FAILURE_PREFIX + ", ".join(failures)
            out["detections"] = None
        else:
            out["detections"] = self.detections(prediction, where)
        out.update((key, prediction[key]) for key in IMAGE_FIELDS if key in prediction)
        return out

    def detections(self, prediction: dict[str, Any], where: str) -> list[dict[str, Any]]:
        detections = prediction.get("detections")
        if detections is None:
            detections = []
        if not isinstance(detections, list):
            raise self.fail(f'{where}: "detections" is not a list')
        out = []
        whole_image: dict[str, Any] | None = None
        for j, det in enumerate(detections):
            det_where = f"{where} detection {j}"
            box = self.box(det, det_where)
            if box is None:
                if whole_image is not None:
                    raise self.fail(f"{det_where}: a second whole-image pseudo-detection (category 0)")
                whole_image = det
                continue
            self.attach(box, self.classes(det.get("raw_classifications"), det.get("processed_classification"),
                                          det_where))  # fmt: skip
            out.append(box)
        image_level = self.image_level(prediction, whole_image, where)
        if image_level[0] is not None:
            if not out and self.labels[int(image_level[0][0][0])] != BLANK:
                box = {"category": UNKNOWN_DETECTION, "conf": image_level[0][0][1], "bbox": [0.0, 0.0, 1.0, 1.0]}
                self.whole_image_boxes.append(box)
                out.append(box)
            for box in out:
                self.attach(box, image_level)
        return out

    def image_level(self, prediction: dict[str, Any], whole_image: dict[str, Any] | None, where: str) -> _Classes:
        """The answer for the whole image: a whole-image classifier's, or a legacy file's per-image one."""
        if whole_image is not None:
            raw, processed = whole_image.get("raw_classifications"), whole_image.get("processed_classification")
            return self.classes(raw, processed, f"{where} whole-image detection")
        if any(key in prediction for key in _LEGACY_FIELDS):
            processed = self.legacy_prediction(prediction)
            return self.classes(prediction.get("classifications"), processed, where, raw_key="classifications")
        return None, None, None

    def box(self, det: Any, where: str) -> dict[str, Any] | None:
        """The MegaDetector detection of a SpeciesNet one; None for the whole-image pseudo-detection."""
        if not isinstance(det, dict):
            raise self.fail(f"{where} is not an object")
        category = det.get("category")
        if not isinstance(category, str) or not category:
            raise self.fail(f'{where}: "category" is not a string: {_json(category)}')
        label = det.get("label")
        if label is not None and not isinstance(label, str):
            raise self.fail(f'{where}: "label" is not a string: {_json(label)}')
        if category == WHOLE_IMAGE_CATEGORY:
            return None
        conf = det.get("conf")
        if not is_finite_number(conf):
            raise self.fail(f'{where}: "conf" is not a number: {_json(conf)}')
        bbox = det.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(is_finite_number(v) for v in bbox)):
            raise self.fail(f'{where}: "bbox" must be four finite numbers, got {_json(bbox)}')
        name = "person" if label == "human" else label
        known = self.categories.get(category)
        if known is None:
            self.categories[category] = name or category
        elif name is not None and name != known:
            raise self.fail(f'{where}: category "{category}" is labelled "{label}", elsewhere "{known}"')
        return {"category": category, "conf": float(conf), "bbox": bbox}

    def legacy_prediction(self, prediction: dict[str, Any]) -> dict[str, Any] | None:
        """A legacy image's ``prediction``, ``prediction_score`` and ``prediction_source`` as one processed class."""
        if "prediction" not in prediction:
            return None
        return {"class": prediction["prediction"], "score": prediction.get("prediction_score"),
                "source": prediction.get("prediction_source")}  # fmt: skip

    def class_id(self, label: Any, where: str) -> str:
        if not isinstance(label, str) or len(label.split(";")) != 7:
            raise self.fail(f"{where}: class {_json(label)} is not a SpeciesNet label ({_SHAPE})")
        cid = self.ids.get(label)
        if cid is None:
            cid = self.ids[label] = str(len(self.ids))
            self.labels.append(label)
        return cid

    def score(self, value: Any, where: str) -> float:
        if not is_finite_number(value):
            raise self.fail(f"{where}: score is not a number: {_json(value)}")
        return float(value)

    def classes(self, raw: Any, processed: Any, where: str, *, raw_key: str = "raw_classifications") -> _Classes:
        """``(classifications, raw_classifications, classification_source)`` of one box (or image)."""
        classifications = raw_out = source = None
        if raw is not None:
            classes = raw.get("classes") if isinstance(raw, dict) else None
            scores = raw.get("scores") if isinstance(raw, dict) else None
            if not (isinstance(classes, list) and isinstance(scores, list) and classes and len(classes) == len(scores)):
                raise self.fail(f'{where}: "{raw_key}" must be {{"classes": [...], "scores": [...]}} of one length')
            raw_out = [[self.class_id(c, f"{where} {raw_key}"), self.score(s, f"{where} {raw_key}")]
                       for c, s in zip(classes, scores, strict=True)]  # fmt: skip
            classifications = [list(raw_out[0])]
        if processed is not None:
            key = "prediction" if raw_key == "classifications" else "processed_classification"
            if not isinstance(processed, dict):
                raise self.fail(f'{where}: "{key}" is not an object')
            label = processed.get("class")
            if isinstance(label, str) and is_human_genus(label):
                label = HUMAN
            cid = self.class_id(label, f"{where} {key}")
            classifications = [[cid, self.score(processed.get("score"), f"{where} {key}")]]
            source = processed.get("source")
            if source is not None and not isinstance(source, str):
                raise self.fail(f"{where}: {key} source is not a string: {_json(source)}")
        return classifications, raw_out, source

    @staticmethod
    def attach(box: dict[str, Any], classes: _Classes) -> None:
        classifications, raw, source = classes
        if classifications is None:
            return
        box["classifications"] = [list(c) for c in classifications]
        if raw is not None:
            box["raw_classifications"] = [list(c) for c in raw]
        if source is not None:
            box["classification_source"] = source
