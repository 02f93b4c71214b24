"""SpeciesNet predictions.json files over the real test photos' MegaDetector boxes (issue 20).

:func:`predictions_506` is what SpeciesNet 5.0.6 writes for ``../shared/testdata/cameratrap``
(``detections.json``'s boxes, most confident first; every box at conf >= 0.1 classified, with
two raw classes and a processed one); :func:`predictions_legacy` what SpeciesNet 5.0.5 wrote
(one answer per image, from its top box). The classes and the rules are made up here, so every
value the tests check is known.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ELEPHANT = "5c7ce479-8a45-40b3-ae21-7c97dfae22f5;mammalia;proboscidea;elephantidae;loxodonta;africana;african elephant"
CATTLE = "aca65aaa-8c6d-4b70-9d20-ac8b9e5b37b6;mammalia;cetartiodactyla;bovidae;bos;taurus;domestic cattle"
BEAR = "436ddfdd-bc43-44c3-a25d-34671d3430a0;mammalia;carnivora;ursidae;ursus;americanus;american black bear"
DOG = "3d80f1d6-b1df-4966-9ff4-94053c7a902a;mammalia;carnivora;canidae;canis;familiaris;domestic dog"
WOLF = "0b1f0a3e-0002-4000-8000-000000000002;mammalia;carnivora;canidae;canis;lupus;gray wolf"
CANIDAE = "3184697f-51ad-4608-9a28-9edb5500159c;mammalia;carnivora;canidae;;;canine family"
OCELOT = "22976d14-d424-4f18-a67a-d8e1689cefcc;mammalia;carnivora;felidae;leopardus;pardalis;ocelot"
BLANK = "f1856211-cfb7-4a5b-9158-c0f72fd09ee6;;;;;;blank"
HUMAN = "990ae9dd-7a59-4344-afcb-1b7b21368000;mammalia;primates;hominidae;homo;sapiens;human"
HOMO = "0b1f0a3e-0110-4000-8000-000000000110;mammalia;primates;hominidae;homo;;homo species"
VEHICLE = "e2895ed5-780b-48f6-8a11-9e27cb594511;;;;;;vehicle"
MAMMAL = "f2d233e3-80e3-433d-9687-e29ecc7a467a;mammalia;;;;;mammal"

#: file -> (top raw class, second raw class); each box of the image at conf >= 0.1 gets them
RAW = {
    "african_elephants.jpg": (ELEPHANT, CATTLE),
    "african_elephants_bw.jpg": (ELEPHANT, CATTLE),
    "african_elephants_cmyk.jpg": (ELEPHANT, CATTLE),
    "african_elephants_truncated_file.jpg": (ELEPHANT, CATTLE),
    "african_elephants_with_exif_orientation.jpg": (ELEPHANT, CATTLE),
    "domestic_cattle.jpg": (CATTLE, ELEPHANT),
    "american_black_bear.jpg": (BEAR, DOG),
    "domestic_dog.jpg": (DOG, WOLF),
    "ocelot.jpg": (OCELOT, DOG),
    "human.jpg": (HUMAN, VEHICLE),
    "vehicle.jpg": (VEHICLE, HUMAN),
    "blank3.jpg": (BLANK, MAMMAL),
}
#: (file, conf) -> raw classes of one box otherwise than its image's: a box that smoothing relabels
ODD_BOX = {("african_elephants.jpg", 0.636): (CATTLE, ELEPHANT)}
MODEL_VERSION = "4.0.1a"


def raw(file: str, conf: float) -> tuple[str, str]:
    """The made-up raw classes of a box."""
    return ODD_BOX.get((file, conf), RAW[file])


LABELS = {"1": "animal", "2": "human", "3": "vehicle"}


def scores(conf: float) -> tuple[float, float]:
    """The made-up raw scores of a box: top ``0.5 + conf / 2`` (4 decimals), second what is left / 2."""
    top = round(0.5 + conf / 2, 4)
    return top, round((1 - top) / 2, 4)


def processed(file: str, category: str, conf: float) -> dict[str, Any]:
    """The made-up ensemble answer of a box: by the detector for people and vehicles, a roll-up for the dog."""
    top, _ = scores(conf)
    if category == "2":
        return {"class": HUMAN, "score": conf, "source": "detector"}
    if category == "3":
        return {"class": VEHICLE, "score": conf, "source": "detector"}
    if file == "domestic_dog.jpg":
        return {"class": CANIDAE, "score": round(top + scores(conf)[1], 4), "source": "classifier+rollup_to_family"}
    if file == "blank3.jpg":
        return {"class": BLANK, "score": top, "source": "classifier"}
    return {"class": raw(file, conf)[0], "score": top, "source": "classifier+geofence"}


def md_boxes(cameratrap: Path) -> list[dict[str, Any]]:
    """The real MegaDetector results of the test photos."""
    return json.loads((cameratrap / "detections.json").read_text())["images"]


def predictions_506(cameratrap: Path) -> dict[str, Any]:
    """SpeciesNet 5.0.6's predictions.json of the test photos (``filepath`` as ``detections.json``'s ``file``)."""
    out = []
    for image in md_boxes(cameratrap):
        dets = []
        for det in sorted(image["detections"], key=lambda d: -d["conf"]):
            box = {"category": det["category"], "label": LABELS[det["category"]], "conf": det["conf"],
                   "bbox": det["bbox"]}  # fmt: skip
            if det["conf"] >= 0.1:
                top, second = scores(det["conf"])
                box["raw_classifications"] = {"classes": list(raw(image["file"], det["conf"])), "scores": [top, second]}
                box["processed_classification"] = processed(image["file"], det["category"], det["conf"])
            dets.append(box)
        out.append({"filepath": image["file"], "country": "USA", "detections": dets, "model_version": MODEL_VERSION})
    return {"info": {"format_version": "20261015"}, "predictions": out}


def predictions_legacy(cameratrap: Path) -> dict[str, Any]:
    """SpeciesNet 5.0.5's predictions.json of the test photos: one answer per image, from its top box.

    Images without boxes: ``blank.jpg`` is blank (the whole image classified), ``blank2.jpg`` a mammal.
    """
    out = []
    for image in md_boxes(cameratrap):
        dets = [{"category": d["category"], "label": LABELS[d["category"]], "conf": d["conf"], "bbox": d["bbox"]}
                for d in sorted(image["detections"], key=lambda d: -d["conf"])]  # fmt: skip
        prediction: dict[str, Any] = {"filepath": image["file"]}
        if dets:
            top, second = scores(dets[0]["conf"])
            answer = processed(image["file"], dets[0]["category"], dets[0]["conf"])
            prediction["classifications"] = {"classes": list(RAW[image["file"]]), "scores": [top, second]}
        else:
            name = image["file"]
            answer = {"class": BLANK if name == "blank.jpg" else MAMMAL, "score": 0.91, "source": "classifier"}
            prediction["classifications"] = {"classes": [answer["class"]], "scores": [0.91]}
        if image["file"] == "human.jpg":
            answer = {"class": HOMO, "score": answer["score"], "source": "classifier+rollup_to_genus"}
        prediction.update({"detections": dets, "prediction": answer["class"], "prediction_score": answer["score"],
                           "prediction_source": answer["source"], "model_version": "4.0.1a"})  # fmt: skip
        out.append(prediction)
    return {"predictions": out}
