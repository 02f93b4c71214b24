"""Issue 20: SpeciesNet's predictions.json in (every reader) and out (``export --format speciesnet``).

The files are built from the real test photos' MegaDetector boxes (:mod:`predictions_data`).
Oracles: MegaDetector's ``generate_md_results_from_predictions_json`` and
``validate_batch_results`` (megadetector-utils), and SpeciesNet 5.0.6's own reader of a
predictions.json (``speciesnet.utils.load_partial_predictions``), loaded from its ``--no-deps``
install under a stub package (its ``__init__`` imports the detector, which needs yolov5).
"""

from __future__ import annotations

import copy
import importlib
import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from helpers import invoke, read_csv, write_json
from predictions_data import (
    BLANK,
    CANIDAE,
    CATTLE,
    DOG,
    ELEPHANT,
    HUMAN,
    MAMMAL,
    VEHICLE,
    WOLF,
    predictions_506,
    predictions_legacy,
)

from megaclassifier.errors import InputFileError
from megaclassifier.formats.detections import load_detections
from megaclassifier.formats.detections_stream import StreamedResults
from megaclassifier.formats.predictions_json import common_name


def converted(path: Path) -> dict[str, Any]:
    return load_detections(path).data


def by_file(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {image["file"]: image for image in data["images"]}


def named(data: dict[str, Any], det: dict[str, Any], key: str = "classifications") -> list[list[Any]]:
    """A detection's classes as their seven-token labels (IDs differ from file to file)."""
    labels = data["classification_category_descriptions"]
    return [[labels[c], s] for c, s in det.get(key) or []]


@pytest.fixture
def p506(cameratrap: Path, tmp_path: Path) -> Path:
    return write_json(tmp_path / "predictions.json", predictions_506(cameratrap))


@pytest.fixture
def legacy(cameratrap: Path, tmp_path: Path) -> Path:
    return write_json(tmp_path / "predictions_legacy.json", predictions_legacy(cameratrap))


# --- in: the conversion --------------------------------------------------------------------------


def test_506_file_reads_as_megadetector_results(p506: Path) -> None:
    data = converted(p506)
    assert data["info"] == {"format_version": "1.6", "classifier": "SpeciesNet 4.0.1a",
                            "converted_from": "SpeciesNet predictions.json (format_version 20261015)"}  # fmt: skip
    assert data["detection_categories"] == {"1": "animal", "2": "person", "3": "vehicle"}
    assert data["classification_categories"] == {
        "0": "african elephant", "1": "domestic cattle", "2": "american black bear", "3": "domestic dog",
        "4": "gray wolf", "5": "canine family", "6": "human", "7": "vehicle", "8": "ocelot",
    }  # fmt: skip
    assert data["classification_category_descriptions"]["5"] == CANIDAE
    images = by_file(data)
    assert len(images) == 14
    assert images["blank.jpg"] == {"file": "blank.jpg", "detections": [], "country": "USA", "model_version": "4.0.1a"}
    dog = images["domestic_dog.jpg"]["detections"]
    assert dog == [
        {"category": "1", "conf": 0.929, "bbox": [0.2377, 0.08398, 0.5161, 0.6497], "classifications": [["5", 0.9822]],
         "raw_classifications": [["3", 0.9645], ["4", 0.0177]], "classification_source": "classifier+rollup_to_family"},
        {"category": "1", "conf": 0.0137, "bbox": [0.2402, 0.3092, 0.2548, 0.2109]},
    ]  # fmt: skip
    person = images["human.jpg"]["detections"][0]
    assert (person["category"], named(data, person), person["classification_source"]) == (
        "2", [[HUMAN, 0.933]], "detector")  # fmt: skip
    assert sum("classifications" in d for im in data["images"] for d in im["detections"]) == 43


def test_streamed_reader_gives_the_same_images_on_every_pass(p506: Path) -> None:
    streamed = StreamedResults(p506)
    whole = converted(p506)
    assert streamed.header == {**whole, "images": None}
    first = list(streamed.images())
    first[0]["detections"].append("edited")  # a pass's images are its own
    assert list(streamed.images()) == whole["images"]
    assert list(streamed.files()) == [image["file"] for image in whole["images"]]


def test_megadetector_converter_gives_the_same_classes(p506: Path) -> None:
    from megadetector.utils.wi_taxonomy_utils import generate_md_results_from_predictions_json

    theirs = generate_md_results_from_predictions_json(json.loads(p506.read_text()))
    ours = converted(p506)
    for key in ("classification_categories", "classification_category_descriptions"):
        assert ours[key] == theirs[key]
    assert ours["detection_categories"].items() >= theirs["detection_categories"].items()
    theirs_images = by_file(theirs)
    for image in ours["images"]:  # MegaDetector rounds every number to 5 decimals
        dets = [{k: v for k, v in d.items() if k != "classification_source"} for d in image["detections"]]
        assert rounded(dets) == theirs_images[image["file"]]["detections"], image["file"]


def rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 5)
    if isinstance(value, list):
        return [rounded(v) for v in value]
    return {k: rounded(v) for k, v in value.items()} if isinstance(value, dict) else value


def test_legacy_file_puts_each_image_answer_on_its_boxes(legacy: Path) -> None:
    data = converted(legacy)
    assert data["info"]["converted_from"] == "SpeciesNet predictions.json (no format_version)"
    assert data["detection_categories"] == {"1": "animal", "2": "person", "3": "vehicle", "4": "unknown"}
    images = by_file(data)
    assert images["blank.jpg"]["detections"] == []  # blank, no boxes: none made
    assert images["blank2.jpg"]["detections"] == [  # a mammal without a box: a whole-image box
        {"category": "4", "conf": 0.91, "bbox": [0.0, 0.0, 1.0, 1.0], "classifications": [["1", 0.91]],
         "raw_classifications": [["1", 0.91]], "classification_source": "classifier"}]  # fmt: skip
    assert named(data, images["blank2.jpg"]["detections"][0]) == [[MAMMAL, 0.91]]
    cattle = images["domestic_cattle.jpg"]["detections"]
    assert [(d["conf"], named(data, d), named(data, d, "raw_classifications"), d["classification_source"])
            for d in cattle] == [
        (conf, [[CATTLE, 0.977]], [[CATTLE, 0.977], [ELEPHANT, 0.0115]], "classifier+geofence")
        for conf in (0.954, 0.952, 0.942)]  # fmt: skip
    people = images["human.jpg"]["detections"]  # "homo species" is written as human, as MegaDetector does
    assert [named(data, d) for d in people] == [[[HUMAN, 0.933]]] * 3
    assert people[0]["classification_source"] == "classifier+rollup_to_genus"


def test_whole_image_classifier_answer_goes_on_every_box() -> None:
    whole = {
        "category": "0",
        "label": "whole_image_classification",
        "conf": 1.0,
        "bbox": [0.0, 0.0, 1.0, 1.0],
        "raw_classifications": {"classes": [DOG, WOLF], "scores": [0.7, 0.2]},
        "processed_classification": {"class": CANIDAE, "score": 0.9, "source": "classifier+rollup_to_family"},
    }
    box = {"category": "1", "label": "animal", "conf": 0.8, "bbox": [0.1, 0.1, 0.2, 0.2]}
    data = {"info": {"format_version": "20261015"}, "predictions": [
        {"filepath": "a.jpg", "detections": [whole, box, {**box, "conf": 0.3}]},
        {"filepath": "b.jpg", "detections": [whole]},
        {"filepath": "c.jpg", "detections": [{**whole, "processed_classification": {
            "class": BLANK, "score": 0.99, "source": "classifier"}}]}]}  # fmt: skip
    from megaclassifier.formats.predictions_json import predictions_to_results

    out = predictions_to_results(data, "p.json")
    expected = {"classifications": [["2", 0.9]], "raw_classifications": [["0", 0.7], ["1", 0.2]],
                "classification_source": "classifier+rollup_to_family"}  # fmt: skip
    assert out["images"][0]["detections"] == [{**box, **expected} for box in (
        {"category": "1", "conf": 0.8, "bbox": [0.1, 0.1, 0.2, 0.2]},
        {"category": "1", "conf": 0.3, "bbox": [0.1, 0.1, 0.2, 0.2]})]  # fmt: skip
    assert out["images"][1]["detections"] == [{"category": "4", "conf": 0.9, "bbox": [0.0, 0.0, 1.0, 1.0], **expected}]
    assert out["images"][2]["detections"] == []
    assert out["detection_categories"]["4"] == "unknown"


@pytest.mark.parametrize(
    ("label", "name"),
    [
        (DOG, "domestic dog"),
        ("u;mammalia;carnivora;canidae;canis;;", "canis species"),
        ("u;mammalia;carnivora;canidae;;;", "canidae family"),
        ("u;mammalia;carnivora;;;;", "carnivora order"),
        ("u;mammalia;;;;;", "mammalia class"),
        ("u;;;;;;", "u category"),
        ("u;mammalia;carnivora;canidae;canis;lupus;", "canis lupus"),
    ],
)
def test_class_names_are_megadetectors(label: str, name: str) -> None:
    from megadetector.utils.wi_taxonomy_utils import get_common_name_from_prediction_string

    assert common_name(label) == name == get_common_name_from_prediction_string(label)


# --- every reader ----------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["p506", "legacy"])
def test_smooth_relabels_a_predictions_file(which: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    source: Path = request.getfixturevalue(which)
    out = tmp_path / "smoothed.json"
    result = invoke("smooth", source, out, quiet=False)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    before = converted(source)["images"]
    changed = {(im["file"], d["conf"]): d for im, old in zip(data["images"], before, strict=True)
               for d, o in zip(im["detections"] or [], old["detections"] or [], strict=True)
               if d.get("classifications") != o.get("classifications")}  # fmt: skip
    if which == "p506":  # the cattle box among the elephants becomes an elephant
        assert result.output.splitlines()[-1] == (
            f"Wrote smoothed results to {out}: 1 changes (other 0, dominant 1, taxonomic 0, same_family 0) "
            "in 1 images, of 43 classified detections")  # fmt: skip
        odd = changed.pop(("african_elephants.jpg", 0.636))
        assert named(data, odd) == [[ELEPHANT, 0.818]]
        assert named(data, odd, "raw_classifications") == [[CATTLE, 0.818], [ELEPHANT, 0.091]]
        assert changed == {}
    else:  # one answer per image: nothing to smooth; the legacy images' 86 boxes are classified
        assert result.output.splitlines()[-1] == (
            f"Wrote smoothed results to {out}: 0 changes (other 0, dominant 0, taxonomic 0, same_family 0) "
            "in 0 images, of 86 classified detections")  # fmt: skip


@pytest.mark.parametrize(("which", "line"), [
    ("p506", "Report of 40 detections, 7 species on 7 pages, 1 deployments, 3 blank images"),
    ("legacy", "Report of 41 detections, 8 species on 8 pages, 1 deployments, 2 blank images"),
])  # fmt: skip
def test_report_of_a_predictions_file(
    which: str, line: str, request: pytest.FixtureRequest, cameratrap: Path, tmp_path: Path
) -> None:
    source: Path = request.getfixturevalue(which)
    out = tmp_path / "report"
    result = invoke("report", source, out, "--images-dir", cameratrap / "images", quiet=False)
    assert result.exit_code == 0, result.output
    made = 40 if which == "p506" else 41
    assert result.output.splitlines()[-1] == (
        f"{line} ({made} thumbnails made, 0 reused, 0 images failed): {out / 'index.html'}"
    )
    index = (out / "index.html").read_text()
    assert "canine family" in index if which == "p506" else "mammal" in index


@pytest.mark.parametrize("which", ["p506", "legacy"])
def test_export_csv_of_a_predictions_file(which: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    source: Path = request.getfixturevalue(which)
    result = invoke("export", source, tmp_path / "d.csv", "--format", "csv")
    assert result.exit_code == 0, result.output
    header, rows = read_csv(tmp_path / "d.csv")
    assert header[-4:] == ["top_class", "top_score", "second_class", "second_score"]
    got = {(r[0], r[3]): (r[4], r[5], r[10], r[11]) for r in rows}
    assert got[("domestic_dog.jpg", "0")] == (
        ("animal", "0.929", "canine family", "0.9822") if which == "p506" else ("animal", "0.929", "canine family",
                                                                                 "0.9822"))  # fmt: skip
    assert got[("human.jpg", "0")] == ("person", "0.933", "human", "0.933")
    assert got[("african_elephants.jpg", "5")] == (
        ("animal", "0.636", "domestic cattle", "0.818") if which == "p506" else
        ("animal", "0.636", "african elephant", "0.9675"))  # fmt: skip
    assert len(rows) == (40 if which == "p506" else 41)


def test_merge_onto_a_predictions_file_replaces_its_classes(p506: Path, tmp_path: Path) -> None:
    probs = tmp_path / "probs.csv"
    probs.write_text("path,deer,elk\ndomestic_dog.jpg___crop00_unknown.jpg,0.6,0.3\n"
                     "human.jpg___crop01_unknown.jpg,0.2,0.7\n")  # fmt: skip
    names = write_json(tmp_path / "names.json", {"0": "deer", "1": "elk"})
    out = tmp_path / "merged.json"
    result = invoke("merge", probs, names, "-o", out, "-j", p506, "-n", "toy", "-t", "0.1", quiet=False)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["classification_categories"] == {"0": "deer", "1": "elk"}
    assert "classification_category_descriptions" not in data
    images = by_file(data)
    assert images["domestic_dog.jpg"]["detections"][0] == {
        "category": "1", "conf": 0.929, "bbox": [0.2377, 0.08398, 0.5161, 0.6497],
        "classifications": [["0", 0.6], ["1", 0.3]]}  # fmt: skip
    assert images["human.jpg"]["detections"][1]["classifications"] == [["1", 0.7], ["0", 0.2]]
    classified = [d for im in data["images"] for d in im["detections"] or [] if set(d) - {"category", "conf", "bbox"}]
    assert len(classified) == 2  # SpeciesNet's classes, raw lists and rules are gone with its categories
    assert result.output.splitlines()[-1] == (
        f"Wrote merged classification/detection results to {out}: 2 detections classified from 2 rows"
    )


# --- out: export --format speciesnet ---------------------------------------------------------------


def md_results(cameratrap: Path, *, ensemble: bool) -> dict[str, Any]:
    """Our ``run`` output over the test photos: SpeciesNet-shaped classes (``ensemble``) or raw top-2."""
    data = converted_from(predictions_506(cameratrap))
    for image in data["images"]:
        for det in image["detections"] or []:
            if not ensemble and "raw_classifications" in det:
                det["classifications"] = det.pop("raw_classifications")
                del det["classification_source"]
    data["info"] = {"format_version": "1.5", "detector": "md_v5a.0.0.pt", "classifier": "speciesnet-4.0.1a"}
    data["images"].append({"file": "broken.jpg", "failure": "image access failure", "detections": None})
    return data


def converted_from(predictions: dict[str, Any]) -> dict[str, Any]:
    from megaclassifier.formats.predictions_json import predictions_to_results

    data = predictions_to_results(predictions, "p.json")
    for image in data["images"]:
        image.pop("model_version", None)
        image.pop("country", None)
    return data


def test_export_speciesnet_writes_the_506_layout(cameratrap: Path, tmp_path: Path) -> None:
    source = write_json(tmp_path / "final.json", md_results(cameratrap, ensemble=True))
    out = tmp_path / "out" / "predictions.json"
    result = invoke("export", source, out, "--format", "speciesnet", quiet=False)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == (
        f"Wrote SpeciesNet predictions of 15 images (85 detections, 43 classified; 1 failed images) to {out}"
    )
    written = json.loads(out.read_text())
    expected = predictions_506(cameratrap)
    for prediction in expected["predictions"]:
        del prediction["country"], prediction["model_version"]
    expected["predictions"].append({"filepath": "broken.jpg", "failures": ["DETECTOR"]})
    assert written == expected


def test_round_trip_md_to_predictions_to_md(cameratrap: Path, tmp_path: Path) -> None:
    original = md_results(cameratrap, ensemble=True)
    source = write_json(tmp_path / "final.json", original)
    assert invoke("export", source, tmp_path / "p.json", "--format", "speciesnet").exit_code == 0
    back = converted(tmp_path / "p.json")
    assert [im["file"] for im in back["images"]] == [im["file"] for im in original["images"]]
    for mine, theirs in zip(back["images"], original["images"], strict=True):
        if theirs.get("failure"):
            assert mine == {"file": "broken.jpg", "failure": "SpeciesNet failures: DETECTOR", "detections": None}
            continue
        assert [{k: v for k, v in d.items() if "classif" not in k} for d in mine["detections"]] == [
            {k: v for k, v in d.items() if "classif" not in k} for d in theirs["detections"]
        ]
        for a, b in zip(mine["detections"], theirs["detections"], strict=True):
            for key in ("classifications", "raw_classifications"):
                assert named(back, a, key) == named(original, b, key)
            assert a.get("classification_source") == b.get("classification_source")


def test_raw_top_k_results_export_with_top_1_as_the_processed_class(cameratrap: Path, tmp_path: Path) -> None:
    source = write_json(tmp_path / "final.json", md_results(cameratrap, ensemble=False))
    assert invoke("export", source, tmp_path / "p.json", "--format", "speciesnet").exit_code == 0
    dog = json.loads((tmp_path / "p.json").read_text())["predictions"]
    dog = next(p for p in dog if p["filepath"] == "domestic_dog.jpg")["detections"][0]
    assert dog["raw_classifications"] == {"classes": [DOG, WOLF], "scores": [0.9645, 0.0177]}
    assert dog["processed_classification"] == {"class": DOG, "score": 0.9645, "source": "classifier"}


def test_megadetector_converter_reads_our_export(cameratrap: Path, tmp_path: Path) -> None:
    from megadetector.postprocessing.validate_batch_results import ValidateBatchResultsOptions, validate_batch_results
    from megadetector.utils.wi_taxonomy_utils import generate_md_results_from_predictions_json

    original = md_results(cameratrap, ensemble=True)
    source = write_json(tmp_path / "final.json", original)
    out = tmp_path / "p.json"
    assert invoke("export", source, out, "--format", "speciesnet", "--images-dir", cameratrap / "images").exit_code == 0
    md_file = tmp_path / "md.json"
    theirs = generate_md_results_from_predictions_json(str(out), str(md_file), base_folder=str(cameratrap / "images"))
    options = ValidateBatchResultsOptions()
    options.raise_errors = True
    assert validate_batch_results(str(md_file), options)["validation_results"]["errors"] == []
    images = by_file(theirs)
    assert images["broken.jpg"] == {"file": "broken.jpg", "failure": "['DETECTOR']", "detections": None}
    mine = by_file(original)
    for file, image in images.items():
        if file == "broken.jpg":
            continue
        for a, b in zip(image["detections"], mine[file]["detections"], strict=True):
            assert (a["category"], a["conf"], a["bbox"]) == (b["category"], b["conf"], [round(v, 5) for v in b["bbox"]])
            for key in ("classifications", "raw_classifications"):
                assert named(theirs, a, key) == named(original, b, key), (file, key)
    dog = images["domestic_dog.jpg"]["detections"][0]
    assert named(theirs, dog) == [[CANIDAE, 0.9822]]
    assert theirs["classification_categories"][dog["classifications"][0][0]] == "canine family"


def _speciesnet(module: str) -> types.ModuleType:
    """``speciesnet.<module>`` from the installed package, under a stub ``speciesnet`` (no ``__init__``)."""
    spec = importlib.util.find_spec("speciesnet")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("speciesnet is not installed (pip install --no-deps speciesnet==5.0.6)")
    saved = {k: v for k, v in sys.modules.items() if k == "speciesnet" or k.startswith("speciesnet.")}
    stub = types.ModuleType("speciesnet")
    stub.__path__ = list(spec.submodule_search_locations)
    sys.modules["speciesnet"] = stub
    try:
        return importlib.import_module(f"speciesnet.{module}")
    finally:
        for key in [k for k in sys.modules if k == "speciesnet" or k.startswith("speciesnet.")]:
            del sys.modules[key]
        sys.modules.update(saved)


def test_speciesnet_reads_our_export_to_resume_from(cameratrap: Path, tmp_path: Path) -> None:
    utils = _speciesnet("utils")
    source = write_json(tmp_path / "final.json", md_results(cameratrap, ensemble=True))
    out = tmp_path / "p.json"
    assert invoke("export", source, out, "--format", "speciesnet").exit_code == 0
    files = [p["filepath"] for p in json.loads(out.read_text())["predictions"]]
    partial, todo = utils.load_partial_predictions(out, [{"filepath": f} for f in files])
    assert sorted(partial) == sorted(f for f in files if f != "broken.jpg")
    assert todo == [{"filepath": "broken.jpg"}]  # a failed image is done again
    assert partial["domestic_dog.jpg"]["detections"][0]["processed_classification"]["class"] == CANIDAE
    legacy = write_json(tmp_path / "legacy.json", predictions_legacy(cameratrap))
    with pytest.raises(RuntimeError, match="older output format"):  # SpeciesNet tells the two layouts apart
        utils.load_partial_predictions(legacy, [{"filepath": f} for f in files])


def test_export_speciesnet_options(cameratrap: Path, tmp_path: Path) -> None:
    data = md_results(cameratrap, ensemble=True)
    source = write_json(tmp_path / "final.json", data)
    result = invoke("export", source, tmp_path / "p.json", "--format", "speciesnet", "-t", "0.3")
    assert (result.exit_code, result.output.splitlines()[-1]) == (
        2,
        "Error: --threshold: not with --format speciesnet, which writes every box",
    )
    truth = copy.deepcopy(data)
    del truth["images"][3]["detections"][0]["conf"]
    bad = write_json(tmp_path / "truth.json", truth)
    result = invoke("export", bad, tmp_path / "p.json", "--format", "speciesnet")
    assert (result.exit_code, result.output.splitlines()[-1]) == (1, (
        f'Error: {bad}: images[3] ("african_elephants.jpg") detection 0 has no conf (a ground-truth box); '
        "SpeciesNet's predictions need one"))  # fmt: skip
    assert not (tmp_path / "p.json").exists()


def test_classes_without_seven_token_labels_get_speciesnets_or_made_up_ones() -> None:
    from megaclassifier.export.speciesnet import speciesnet_label

    assert speciesnet_label("deer", "x;mammalia;cetartiodactyla;cervidae;;;deer family|y;;;;;;z") == (
        "x;mammalia;cetartiodactyla;cervidae;;;deer family"
    )
    assert speciesnet_label("Empty", None) == BLANK
    assert speciesnet_label("person", "") == HUMAN
    assert speciesnet_label("vehicle", None) == VEHICLE
    made = speciesnet_label("Deer", "mammalia;cetartiodactyla;cervidae;odocoileus;virginianus")
    assert made.split(";")[1:] == ["mammalia", "cetartiodactyla", "cervidae", "odocoileus", "virginianus", "deer"]
    other = speciesnet_label("Other", None)
    assert other.split(";")[1:] == ["", "", "", "", "", "other"] and len(other.split(";")[0]) == 36


# --- bad files ---------------------------------------------------------------------------------------

GOOD_BOX = {"category": "1", "label": "animal", "conf": 0.9, "bbox": [0.1, 0.1, 0.2, 0.2]}
RAW_OK = {"classes": [DOG], "scores": [0.9]}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"predictions": {}}, '"predictions" is not a list; is this a SpeciesNet predictions.json?'),
        ({"info": [], "predictions": []}, '"info" is not an object'),
        ({"predictions": [1]}, "predictions[0] is not an object"),
        ({"predictions": [{"filepath": ""}]}, 'predictions[0] has no "filepath"'),
        ({"predictions": [{"filepath": "a.jpg", "failures": "DETECTOR"}]},
         'predictions[0] ("a.jpg"): "failures" is not a list of strings: "DETECTOR"'),
        ({"predictions": [{"filepath": "a.jpg", "detections": {}}]},
         'predictions[0] ("a.jpg"): "detections" is not a list'),
        ({"predictions": [{"filepath": "a.jpg", "detections": [{**GOOD_BOX, "conf": "high"}]}]},
         'predictions[0] ("a.jpg") detection 0: "conf" is not a number: "high"'),
        ({"predictions": [{"filepath": "a.jpg", "detections": [{**GOOD_BOX, "category": 1}]}]},
         'predictions[0] ("a.jpg") detection 0: "category" is not a string: 1'),
        ({"predictions": [{"filepath": "a.jpg", "detections": [{**GOOD_BOX, "bbox": [0, 0, 1]}]}]},
         'predictions[0] ("a.jpg") detection 0: "bbox" must be four finite numbers, got [0, 0, 1]'),
        ({"predictions": [{"filepath": "a.jpg", "detections": [{**GOOD_BOX, "label": "human"}]}]},
         'predictions[0] ("a.jpg") detection 0: category "1" is labelled "human", elsewhere "animal"'),
        ({"predictions": [{"filepath": "a.jpg", "detections": [{**GOOD_BOX, "raw_classifications": {
            "classes": [DOG], "scores": ["0.9"]}}]}]},
         'predictions[0] ("a.jpg") detection 0 raw_classifications: score is not a number: "0.9"'),
        ({"predictions": [{"filepath": "a.jpg", "detections": [{**GOOD_BOX, "raw_classifications": {
            "classes": [DOG], "scores": [True]}}]}]},
         'predictions[0] ("a.jpg") detection 0 raw_classifications: score is not a number: true'),
        ({"predictions": [{"filepath": "a.jpg", "detections": [{**GOOD_BOX, "raw_classifications": {
            "classes": [DOG, WOLF], "scores": [0.9]}}]}]},
         'predictions[0] ("a.jpg") detection 0: "raw_classifications" must be {"classes": [...], "scores": [...]} '
         "of one length"),
        ({"predictions": [{"filepath": "a.jpg", "detections": [{**GOOD_BOX, "raw_classifications": {
            "classes": ["dog"], "scores": [0.9]}}]}]},
         'predictions[0] ("a.jpg") detection 0 raw_classifications: class "dog" is not a SpeciesNet label '
         "(uuid;class;order;family;genus;species;common name)"),
        ({"predictions": [{"filepath": "a.jpg", "detections": [{**GOOD_BOX, "raw_classifications": RAW_OK,
            "processed_classification": {"class": DOG, "score": None}}]}]},
         'predictions[0] ("a.jpg") detection 0 processed_classification: score is not a number: null'),
        ({"predictions": [{"filepath": "a.jpg", "prediction": DOG, "prediction_score": True}]},
         'predictions[0] ("a.jpg") prediction: score is not a number: true'),
        ({"predictions": [{"filepath": "a.jpg"}, {"filepath": "a.jpg"}]},
         'images[1] repeats the file "a.jpg" of images[0]; each file may appear once (combine their detections '
         "into one entry)"),
    ],
)  # fmt: skip
def test_bad_predictions_files_give_one_line_errors(data: Any, message: str, tmp_path: Path) -> None:
    path = write_json(tmp_path / "predictions.json", data)
    if "repeats" not in message:  # the streamed reader (smooth, restrict, rollup) says the same
        with pytest.raises(InputFileError) as raised:
            list(StreamedResults(path).images())
        assert str(raised.value) == f"{path}: {message}"
    commands = [["report", path, tmp_path / "r", "--images-dir", tmp_path], ["crop", path, tmp_path / "crops"],
                ["export", path, tmp_path / "x.csv", "--format", "csv"]]  # fmt: skip
    if "repeats" not in message:
        commands.append(["smooth", path, tmp_path / "s.json"])
    for command in commands:
        result = invoke(*command)
        assert result.exception is None or isinstance(result.exception, SystemExit), result.output
        assert (result.exit_code, result.output.splitlines()[-1]) == (1, f"Error: {path}: {message}"), command
        assert [line for line in result.output.splitlines() if "Error" in line or "Traceback" in line] == [
            f"Error: {path}: {message}"
        ]


def test_hostile_predictions_files_give_one_line_errors(tmp_path: Path) -> None:
    from megaclassifier.formats.json_input import TOO_DEEP, TOO_LONG_NUMBER

    box = json.dumps({**GOOD_BOX, "raw_classifications": {"classes": [DOG], "scores": [0.9]}})
    cases = {
        "deep": ('{"predictions": [{"filepath": "a.jpg", "detections": [' + "[" * 20_000 + "]" * 20_000 + "]}]}",
                 TOO_DEEP),
        "long": (('{"predictions": [{"filepath": "a.jpg", "detections": [' + box + "]}]}").replace(
            "0.9]", "9" * 5000 + "]"), TOO_LONG_NUMBER),
    }  # fmt: skip
    for name, (text, message) in cases.items():
        path = tmp_path / f"{name}.json"
        path.write_text(text)
        for command in (["smooth", path, tmp_path / "s.json"], ["export", path, tmp_path / "x.csv", "-f", "csv"]):
            result = invoke(*command)
            assert (result.exit_code, result.output.splitlines()[-1]) == (1, f"Error: {path}: {message}"), name


def test_speciesnets_ensemble_takes_our_boxes_and_raw_classes(cameratrap: Path, tmp_path: Path) -> None:
    """SpeciesNet 5.0.6's ensemble (``ensemble_from_past_runs``' core) re-decides our exported boxes."""
    from predictions_data import BEAR, OCELOT

    ensemble_module = _speciesnet("ensemble")
    release = tmp_path / "release"
    release.mkdir()
    taxa = [ELEPHANT, CATTLE, BEAR, DOG, WOLF, CANIDAE, OCELOT, BLANK, HUMAN, VEHICLE, MAMMAL]
    (release / "taxonomy.txt").write_text("\n".join(taxa) + "\n")
    (release / "geofence.json").write_text("{}")
    info = {"version": "4.0.1a", "type": "always_crop", "classifier": "c.pt", "classifier_labels": "l.txt",
            "detector": "md.pt", "taxonomy": "taxonomy.txt", "geofence": "geofence.json"}  # fmt: skip
    (release / "info.json").write_text(json.dumps(info))
    source = write_json(tmp_path / "final.json", md_results(cameratrap, ensemble=True))
    out = tmp_path / "p.json"
    assert invoke("export", source, out, "--format", "speciesnet").exit_code == 0
    ours = {p["filepath"]: p for p in json.loads(out.read_text())["predictions"] if "failures" not in p}
    ensemble = ensemble_module.SpeciesNetEnsemble(str(release))
    results = ensemble.combine(filepaths=list(ours), classifier_results=ours, detector_results=ours,
                               geolocation_results={f: {} for f in ours})  # fmt: skip
    again = {r["filepath"]: r for r in results}
    for file, prediction in ours.items():  # same boxes, same raw classes; each classified box decided again
        boxes = [{k: v for k, v in d.items() if k != "processed_classification"} for d in again[file]["detections"]]
        assert boxes == [{k: v for k, v in d.items() if k != "processed_classification"}
                         for d in prediction["detections"]], file  # fmt: skip
        assert [("processed_classification" in d) for d in again[file]["detections"]] == [
            ("raw_classifications" in d) for d in prediction["detections"]]  # fmt: skip
    person = again["human.jpg"]["detections"][0]["processed_classification"]
    assert person == {"class": HUMAN, "score": 0.933, "source": "detector"}
    bear = again["american_black_bear.jpg"]["detections"][0]["processed_classification"]
    assert bear["class"] == BEAR and bear["source"] == "classifier"
    utils = _speciesnet("utils")  # and the file SpeciesNet writes of them reads back here
    written = tmp_path / "speciesnet_predictions.json"
    utils.save_predictions(utils.make_predictions_dict(results), written)
    data = converted(written)
    assert data["info"]["converted_from"] == "SpeciesNet predictions.json (format_version 20261015)"
    person = by_file(data)["human.jpg"]["detections"][0]
    assert (named(data, person), person["classification_source"]) == ([[HUMAN, 0.933]], "detector")
