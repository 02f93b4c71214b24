"""Merged output passes MegaDetector's own validator (``megadetector-utils``, test-only).

The probability CSV is built from the real detections of ``../shared/testdata``
(no images are needed): every animal detection with conf >= 0.15 gets a row
with deterministic probabilities, as ``classify`` would write after ``crop``.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from megadetector.postprocessing.validate_batch_results import ValidateBatchResultsOptions, validate_batch_results

from megaclassifier.formats.naming import crop_filename
from megaclassifier.merge import classification_list, merge_classifications

pytestmark = pytest.mark.testdata

NAMES = ["bear", "cervid", "cow", "elephant", "other"]


def validate(source: Path | dict) -> dict:
    options = ValidateBatchResultsOptions()
    options.raise_errors = False
    arg = str(source) if isinstance(source, Path) else source
    return validate_batch_results(arg, options)["validation_results"]


def probabilities(k: int) -> list[float]:
    weights = [((k * 7 + i * 3) % 11) + 1 for i in range(len(NAMES))]
    return [w / sum(weights) for w in weights]


def build_inputs(md: dict, tmp_path: Path) -> tuple[Path, Path, dict[tuple[str, int], list[float]]]:
    detector = md["info"]["detector"]
    animal = {k for k, v in md["detection_categories"].items() if v == "animal"}
    rows: dict[tuple[str, int], list[float]] = {}
    for image in md["images"]:
        for i, det in enumerate(image.get("detections") or []):
            if det["category"] in animal and det["conf"] >= 0.15:
                rows[image["file"], i] = probabilities(len(rows))
    csv_path = tmp_path / "probs.csv"
    lines = ["path," + ",".join(NAMES)]
    lines += [",".join([crop_filename(f, i, detector), *map(repr, p)]) for (f, i), p in rows.items()]
    csv_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({str(i): n for i, n in enumerate(NAMES)}), encoding="utf-8")
    return csv_path, labels, rows


@pytest.mark.parametrize(
    ("dataset", "version_in", "version_out"), [("cameratrap", "1.4", "1.4"), ("lila31", "1.1", "1.3")]
)
def test_merged_real_results_validate(
    request: pytest.FixtureRequest, tmp_path: Path, dataset: str, version_in: str, version_out: str
) -> None:
    detections = request.getfixturevalue(dataset) / "detections.json"
    md = json.loads(detections.read_text(encoding="utf-8"))
    assert md["info"]["format_version"] == version_in
    csv_path, labels, rows = build_inputs(md, tmp_path)
    assert len(rows) >= 10

    out_path = tmp_path / "merged.json"
    summary = merge_classifications(
        csv_path,
        labels,
        output_json=out_path,
        classifier_name="test_classifier",
        detection_json=detections,
        threshold=0.1,
        typical_classification_threshold=0.75,
    )
    assert (summary.rows, summary.detections_classified, summary.rows_unmatched) == (len(rows), len(rows), 0)

    results = validate(out_path)
    assert results["errors"] == []
    assert results["warnings"] == []
    assert sum(results["classification_category_id_to_count"].values()) > len(rows)

    out = json.loads(out_path.read_text(encoding="utf-8"))
    assert out["info"]["format_version"] == version_out
    assert summary.format_version == version_out
    # Everything but the classifications and the classifier info is the input, unchanged
    expected = copy.deepcopy(md)
    expected["info"].update(
        format_version=version_out,
        classifier="test_classifier",
        classification_completion_time=out["info"]["classification_completion_time"],
        classifier_metadata={"typical_classification_threshold": 0.75},
    )
    for image in expected["images"]:
        for i, det in enumerate(image.get("detections") or []):
            if (image["file"], i) in rows:
                det["classifications"] = classification_list(rows[image["file"], i], threshold=0.1)
    expected["classification_categories"] = {str(i): n for i, n in enumerate(NAMES)}
    assert out == expected


def test_lila31_input_alone_fails_the_validator(lila31: Path) -> None:
    """Why merge raises pre-1.3 files to "1.3": the validator accepts nothing older."""
    results = validate(lila31 / "detections.json")
    assert results["errors"] == ["This validator can only be used with format version 1.3 or later"]


def merged(tmp_path: Path, md: dict) -> dict:
    detections = tmp_path / "md.json"
    detections.write_text(json.dumps(md), encoding="utf-8")
    csv_path = tmp_path / "probs.csv"
    csv_path.write_text(f"path,{','.join(NAMES)}\nok.jpg___crop00_md.jpg,0.1,0.2,0.3,0.2,0.2\n", encoding="utf-8")
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({str(i): n for i, n in enumerate(NAMES)}), encoding="utf-8")
    out = tmp_path / "out.json"
    merge_classifications(csv_path, labels, output_json=out, classifier_name="c", detection_json=detections)
    return json.loads(out.read_text(encoding="utf-8"))


def synthetic(version: str, failure: dict) -> dict:
    return {
        "info": {"format_version": version, "detector": "md"},
        "detection_categories": {"1": "animal"},
        "images": [
            {"file": "ok.jpg", "detections": [{"category": "1", "conf": 1, "bbox": [0, 0, 1, 1]}]},
            {"file": "bad.jpg", "failure": "image access failure", **failure},
        ],
    }


def test_old_file_with_integer_conf_and_failure_without_detections(tmp_path: Path) -> None:
    out = merged(tmp_path, synthetic("1.1", {}))
    assert out["info"]["format_version"] == "1.3"
    assert out["images"][0]["detections"][0]["conf"] == 1.0
    assert out["images"][1] == {"file": "bad.jpg", "failure": "image access failure"}
    results = validate(out)
    assert results["errors"] == []
    # failed images are copied unchanged; a 1.1 failure has no detections key, which is only a warning
    assert results["warnings"] == ["Image bad.jpg has a failure value, should also have a null detections array"]


def test_current_file_with_null_detections_failure(tmp_path: Path) -> None:
    md = synthetic("1.6", {"detections": None})
    md["images"][0]["detections"][0]["conf"] = 0.97
    out = merged(tmp_path, md)
    assert out["info"]["format_version"] == "1.6"
    assert out["images"][0]["detections"][0]["classifications"] == [
        ["2", 0.3],
        ["1", 0.2],
        ["3", 0.2],
        ["4", 0.2],
        ["0", 0.1],
    ]
    results = validate(out)
    assert (results["errors"], results["warnings"]) == ([], [])
