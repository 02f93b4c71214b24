"""Tests of megaclassifier.merge: classification lists, attaching rows, info and format_version."""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import re
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from helpers import write_csv, write_json

from megaclassifier.errors import InputFileError, MegaClassifierError
from megaclassifier.formats.detections import load_detections
from megaclassifier.formats.naming import crop_filename
from megaclassifier.merge import (
    classification_list,
    merge_classifications,
    merge_probabilities,
    round_confidence,
)

DETECTOR = "md_v5a.0.0.pt"
NAMES = ["cervid", "cow", "other"]


def det(conf: float | int = 0.9, category: str = "1", bbox: list | None = None) -> dict:
    return {"category": category, "conf": conf, "bbox": bbox or [0.1, 0.2, 0.3, 0.4]}


def md_file(images: list[dict], *, version: str | float | None = "1.4", info: bool = True) -> dict:
    data: dict = {}
    if info:
        data["info"] = {"detector": DETECTOR, "detection_completion_time": "2024-06-01 00:00:00"}
        if version is not None:
            data["info"]["format_version"] = version
    data["detection_categories"] = {"1": "animal", "2": "person", "3": "vehicle"}
    data["images"] = images
    return data


def key(file: str, index: int) -> str:
    return crop_filename(file, index, DETECTOR)


@pytest.fixture
def logs() -> list[str]:
    """``LEVEL: message`` lines logged by the merge modules (whatever the CLI set up)."""
    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(f"{record.levelname}: {record.getMessage()}")

    logger = logging.getLogger("megaclassifier.merge")
    handler = Collect(level=logging.DEBUG)
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield messages
    logger.removeHandler(handler)
    logger.setLevel(old_level)


@pytest.fixture
def label_index(tmp_path: Path) -> Path:
    return write_json(tmp_path / "label_index.json", {str(i): n for i, n in enumerate(NAMES)})


def run_merge(tmp_path: Path, data: dict, header: list[str], rows: list[list[object]], **options: object):
    detections = write_json(tmp_path / "md.json", data)
    csv_path = write_csv(tmp_path / "probs.csv", header, rows)
    labels = write_json(tmp_path / "label_index.json", {str(i): n for i, n in enumerate(NAMES)})
    out = tmp_path / "out" / "merged.json"
    options.setdefault("classifier_name", "my_classifier")
    summary = merge_classifications(csv_path, labels, output_json=out, detection_json=detections, **options)
    return summary, json.loads(out.read_text(encoding="utf-8")), out


# --- classification_list -------------------------------------------------------------------------


def test_spec_fragment() -> None:
    assert classification_list(np.array([0.5, 0.25, 0.25]), threshold=0.1) == [["0", 0.5], ["1", 0.25], ["2", 0.25]]


def test_sorted_descending_ties_keep_class_order() -> None:
    probs = np.array([0.2, 0.3, 0.2, 0.3])
    assert classification_list(probs, threshold=0.1) == [["1", 0.3], ["3", 0.3], ["0", 0.2], ["2", 0.2]]


def test_sort_uses_rounded_value() -> None:
    # 0.12344 > 0.12341, but both round to 0.1234: the tie keeps class order
    assert classification_list(np.array([0.12341, 0.12344, 0.7]), threshold=0.1) == [
        ["2", 0.7],
        ["0", 0.1234],
        ["1", 0.1234],
    ]


@pytest.mark.parametrize(
    ("p", "expected"),
    [
        (0.12345, 0.1234),
        (0.10005, 0.1),
        (0.00015, 0.0001),
        (0.00005, 0.0),
        (0.99995, 1.0),
        (0.33333334, 0.3333),
        (0.123456789, 0.1235),
        (1e-07, 0.0),
        (0.25, 0.25),
    ],
)
def test_rounding_is_numpy_half_even(p: float, expected: float) -> None:
    assert classification_list(np.array([p]), threshold=0.0) == [["0", expected]]
    assert float(round(np.float64(p), 4)) == expected


def test_rounding_matches_reference_expression_on_random_values() -> None:
    values = np.random.default_rng(0).random(10_000)
    assert round_confidence(values).tolist() == [float(round(np.float64(v), 4)) for v in values]
    # and the values are plain Python floats, as json writes them
    assert all(type(p) is float for _, p in classification_list(values[:50], threshold=0.0))


def test_threshold_compares_unrounded_value() -> None:
    probs = np.array([0.1, 0.09999, 0.099996, 0.8])
    # 0.1 == threshold is kept; 0.099996 rounds to 0.1 but is below the threshold
    assert classification_list(probs, threshold=0.1) == [["3", 0.8], ["0", 0.1]]


def test_threshold_zero_and_one() -> None:
    assert classification_list(np.array([0.0, 1.0]), threshold=0.0) == [["1", 1.0], ["0", 0.0]]
    assert classification_list(np.array([0.999, 1.0]), threshold=1.0) == [["1", 1.0]]
    assert classification_list(np.array([0.05, 0.05]), threshold=0.1) == []


def test_max_classifications_keeps_top_k_after_sorting() -> None:
    probs = np.array([0.1, 0.4, 0.15, 0.35])
    assert classification_list(probs, threshold=0.1, max_classifications=2) == [["1", 0.4], ["3", 0.35]]
    assert classification_list(probs, threshold=0.3, max_classifications=5) == [["1", 0.4], ["3", 0.35]]


# --- merge_classifications ---------------------------------------------------------------------


def test_merge_output_exact_and_untouched_bytes(tmp_path: Path) -> None:
    images = [
        {
            "file": "cam1/\u00e9l\u00e9phant.jpg",
            "max_detection_conf": 0.93,
            "detections": [det(0.93), det(0.1, bbox=[0, 0, 1, 1]), det(0.5, category="2")],
        },
        {"file": "cam1/failed.jpg", "failure": "image access failure", "detections": None},
        {"file": "cam1/empty.jpg", "detections": []},
    ]
    data = md_file(images)
    rows = [[key("cam1/\u00e9l\u00e9phant.jpg", 0), 0.5, 0.25, 0.25]]
    before = datetime.now().replace(microsecond=0)
    summary, out, out_path = run_merge(tmp_path, data, ["path", *NAMES], rows, threshold=0.1)
    after = datetime.now()

    stamp = out["info"]["classification_completion_time"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", stamp)
    assert before <= datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S") <= after

    expected = copy.deepcopy(data)
    # no --typical-confidence-threshold: the documented default still goes in (Timelapse reads it)
    expected["info"].update(classifier="my_classifier", classification_completion_time=stamp,
                            classifier_metadata={"typical_classification_threshold": 0.75})  # fmt: skip
    expected["images"][0]["detections"][0]["classifications"] = [["0", 0.5], ["1", 0.25], ["2", 0.25]]
    expected["classification_categories"] = {"0": "cervid", "1": "cow", "2": "other"}
    # indent 1, ASCII escapes, key order kept, ints stay ints, floats by repr
    assert out_path.read_text(encoding="ascii") == json.dumps(expected, indent=1, ensure_ascii=True)
    assert list(out) == ["info", "detection_categories", "images", "classification_categories"]
    assert summary.rows == summary.rows_merged == summary.detections_classified == 1
    assert summary.rows_unmatched == 0
    assert summary.images_written == 3
    assert summary.format_version == "1.4"
    assert summary.output_json == out_path


def test_typical_threshold_and_existing_info_kept(tmp_path: Path) -> None:
    data = md_file([{"file": "a.jpg", "detections": [det()]}])
    data["info"]["detector_metadata"] = {"megadetector_version": "v5a.0.0", "typical_detection_threshold": 0.2}
    _, out, _ = run_merge(
        tmp_path,
        data,
        ["path", *NAMES],
        [[key("a.jpg", 0), 0.1, 0.2, 0.7]],
        typical_classification_threshold=0.6,  # not the default 0.75
        threshold=0.05,
    )
    info = out["info"]
    assert list(info) == [
        "detector",
        "detection_completion_time",
        "format_version",
        "detector_metadata",
        "classifier",
        "classification_completion_time",
        "classifier_metadata",
    ]
    assert info["classifier_metadata"] == {"typical_classification_threshold": 0.6}
    assert out["images"][0]["detections"][0]["classifications"] == [["2", 0.7], ["1", 0.2], ["0", 0.1]]


def test_existing_classification_categories_replaced_in_place(tmp_path: Path) -> None:
    data = md_file([{"file": "a.jpg", "detections": [det(), det()]}])
    data["images"][0]["detections"][1]["classifications"] = [["7", 0.9]]
    data = {
        "info": data["info"],
        "classification_categories": {"7": "old"},
        "classification_category_descriptions": {"7": "animalia;old"},
        "detection_categories": data["detection_categories"],
        "images": data["images"],
    }
    summary, out, _ = run_merge(tmp_path, data, ["path", *NAMES], [[key("a.jpg", 0), 0.9, 0.05, 0.05]])
    assert list(out) == ["info", "classification_categories", "detection_categories", "images"]
    assert out["classification_categories"] == {"0": "cervid", "1": "cow", "2": "other"}
    # the old classifier's IDs would not match the new categories
    assert out["images"][0]["detections"] == [{**det(), "classifications": [["0", 0.9]]}, det()]
    assert summary.stale_classifications_removed == 1


def test_crop_index_of_three_digits(tmp_path: Path) -> None:
    data = md_file([{"file": "herd.jpg", "detections": [det(round(0.9 - i / 1000, 3)) for i in range(105)]}])
    rows = [[key("herd.jpg", 100), 0.2, 0.7, 0.1], [key("herd.jpg", 5), 0.6, 0.3, 0.1]]
    assert rows[0][0] == "herd.jpg___crop100_md_v5a.0.0.pt.jpg"
    summary, out, _ = run_merge(tmp_path, data, ["path", *NAMES], rows)
    dets = out["images"][0]["detections"]
    assert dets[100]["classifications"] == [["1", 0.7], ["0", 0.2], ["2", 0.1]]
    assert dets[5]["classifications"] == [["0", 0.6], ["1", 0.3], ["2", 0.1]]
    assert [i for i, d in enumerate(dets) if "classifications" in d] == [5, 100]
    assert "classifications" not in dets[10]
    assert summary.detections_classified == 2


def test_unmatched_rows_counted_and_logged(tmp_path: Path, logs: list[str]) -> None:
    data = md_file(
        [
            {"file": "a.jpg", "detections": [det()]},
            {"file": "bad.jpg", "failure": "image access failure", "detections": None},
        ]
    )
    rows = [
        [key("a.jpg", 0), 0.5, 0.25, 0.25],
        [key("missing.jpg", 0), 0.5, 0.25, 0.25],
        [key("a.jpg", 1), 0.5, 0.25, 0.25],
        [key("bad.jpg", 0), 0.5, 0.25, 0.25],
        ["a.jpg", 0.5, 0.25, 0.25],
    ]
    summary, out, _ = run_merge(tmp_path, data, ["path", *NAMES], rows)
    assert (summary.rows, summary.rows_merged, summary.rows_unmatched) == (5, 1, 4)
    assert (summary.rows_unknown_image, summary.rows_bad_index, summary.rows_bad_name) == (1, 2, 1)
    assert out["images"][1] == data["images"][1]
    assert logs[0] == (
        "WARNING: 4 rows matched no detection and were skipped, e.g.:\n"
        "  'missing.jpg___crop00_md_v5a.0.0.pt.jpg': image 'missing.jpg' is not in the detections file\n"
        "  'a.jpg___crop01_md_v5a.0.0.pt.jpg': detection 1 of 'a.jpg', which has 1 detections\n"
        "  'bad.jpg___crop00_md_v5a.0.0.pt.jpg': detection 0 of 'bad.jpg', which has no detections\n"
        "  'a.jpg': not a crop name (<file>___cropNN_<detector>.jpg)"
    )


def test_duplicate_rows_last_wins(tmp_path: Path, logs: list[str]) -> None:
    data = md_file([{"file": "a.jpg", "detections": [det()]}])
    rows = [[key("a.jpg", 0), 0.5, 0.25, 0.25], [key("a.jpg", 0), 0.2, 0.2, 0.6]]
    summary, out, _ = run_merge(tmp_path, data, ["path", *NAMES], rows)
    assert out["images"][0]["detections"][0]["classifications"] == [["2", 0.6], ["0", 0.2], ["1", 0.2]]
    assert (summary.rows_merged, summary.detections_classified, summary.rows_duplicate) == (2, 1, 1)
    assert [m for m in logs if m.startswith("WARNING")] == [
        "WARNING: 1 rows repeated a crop already merged; the last row of each crop was kept"
    ]


def test_datasets_filter(tmp_path: Path) -> None:
    data = md_file(
        [
            {"file": "ds1/a.jpg", "detections": [det()]},
            {"file": "ds2/b.jpg", "detections": [det()]},
            {"file": "ds3/c.jpg", "detections": [det()]},
            {"file": "ds1", "detections": [det()]},  # no "/": in no dataset
        ]
    )
    rows = [[key(f, 0), 0.5, 0.25, 0.25] for f in ("ds1/a.jpg", "ds2/b.jpg", "ds3/c.jpg", "ds1")]
    summary, out, _ = run_merge(tmp_path, data, ["path", *NAMES], rows, datasets=["ds1", "ds2"])
    assert [im["file"] for im in out["images"]] == ["ds1/a.jpg", "ds2/b.jpg"]
    assert all("classifications" in im["detections"][0] for im in out["images"])
    assert (summary.rows_merged, summary.rows_excluded, summary.rows_unmatched) == (2, 2, 0)
    assert summary.images_written == 2


def test_datasets_empty_list_keeps_nothing(tmp_path: Path) -> None:
    data = md_file([{"file": "ds1/a.jpg", "detections": [det()]}])
    summary, out, _ = run_merge(tmp_path, data, ["path", *NAMES], [[key("ds1/a.jpg", 0), 1, 0, 0]], datasets=[])
    assert out["images"] == []
    assert summary.rows_excluded == 1


def test_max_classifications(tmp_path: Path) -> None:
    data = md_file([{"file": "a.jpg", "detections": [det()]}])
    _, out, _ = run_merge(tmp_path, data, ["path", *NAMES], [[key("a.jpg", 0), 0.3, 0.3, 0.4]], max_classifications=2)
    assert out["images"][0]["detections"][0]["classifications"] == [["2", 0.4], ["0", 0.3]]


def test_csv_column_order_differs_from_label_index(tmp_path: Path) -> None:
    data = md_file([{"file": "a.jpg", "detections": [det()]}])
    _, out, _ = run_merge(tmp_path, data, ["path", "other", "cervid", "cow"], [[key("a.jpg", 0), 0.6, 0.3, 0.1]])
    assert out["images"][0]["detections"][0]["classifications"] == [["2", 0.6], ["0", 0.3], ["1", 0.1]]


LABEL_CATEGORIES = {
    "0": "cervid",
    "1": "cow",
    "2": "other",
    "1000000": "label: cervid",
    "1000001": "label: cow",
    "1000002": "label: other",
}


def test_label_only_csv(tmp_path: Path, logs: list[str]) -> None:
    data = md_file([{"file": "a.jpg", "detections": [det(), det()]}])
    summary, out, _ = run_merge(tmp_path, data, ["path", "label"], [[key("a.jpg", 1), "cow"]])
    assert out["images"][0]["detections"] == [det(), {**det(), "classifications": [["1000001", 1.0]]}]
    assert out["classification_categories"] == LABEL_CATEGORIES
    assert summary.labels_only
    assert f"INFO: {tmp_path / 'probs.csv'} has no probability columns; merging labels only" in logs


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        (None, [["0", 0.6], ["1", 0.3]]),
        ("first", [["1000001", 1.0], ["0", 0.6], ["1", 0.3]]),
        ("last", [["0", 0.6], ["1", 0.3], ["1000001", 1.0]]),
    ],
)
def test_label_column_with_predictions(tmp_path: Path, label: str | None, expected: list) -> None:
    data = md_file([{"file": "a.jpg", "detections": [det()]}])
    _, out, _ = run_merge(
        tmp_path, data, ["path", "label", *NAMES], [[key("a.jpg", 0), "cow", 0.6, 0.3, 0.05]], label=label
    )
    assert out["images"][0]["detections"][0]["classifications"] == expected
    assert out["classification_categories"] == LABEL_CATEGORIES


def test_relative_conf(tmp_path: Path) -> None:
    data = md_file([{"file": "a.jpg", "detections": [det()]}])
    _, out, _ = run_merge(
        tmp_path,
        data,
        ["path", *NAMES, "label"],
        [[key("a.jpg", 0), 0.6, 0.3, 0.1, "cow"]],
        relative_conf=True,
        threshold=0.0,
    )
    # max(p - p_cow, 0): 0.3, 0, 0 (float64 arithmetic, then rounded)
    assert out["images"][0]["detections"][0]["classifications"] == [["0", 0.3], ["1", 0.0], ["2", 0.0]]


def test_gzip_csv(tmp_path: Path, label_index: Path) -> None:
    detections = write_json(tmp_path / "md.json", md_file([{"file": "a.jpg", "detections": [det()]}]))
    csv_path = write_csv(tmp_path / "probs.csv.gz", ["path", *NAMES], [[key("a.jpg", 0), 0.5, 0.25, 0.25]])
    merge_classifications(
        csv_path, label_index, output_json=tmp_path / "o.json", classifier_name="c", detection_json=detections
    )
    out = json.loads((tmp_path / "o.json").read_text())
    assert out["images"][0]["detections"][0]["classifications"] == [["0", 0.5], ["1", 0.25], ["2", 0.25]]


def test_output_path_without_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, label_index: Path) -> None:
    detections = write_json(tmp_path / "md.json", md_file([{"file": "a.jpg", "detections": [det()]}]))
    csv_path = write_csv(tmp_path / "probs.csv", ["path", *NAMES], [[key("a.jpg", 0), 0.5, 0.25, 0.25]])
    monkeypatch.chdir(tmp_path)
    summary = merge_classifications(
        csv_path, label_index, output_json="merged.json", classifier_name="c", detection_json=detections
    )
    assert summary.output_json == Path("merged.json")
    assert json.loads((tmp_path / "merged.json").read_text())["info"]["classifier"] == "c"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["label_index.json", "md.json", "merged.json", "probs.csv"]


def test_input_file_not_modified(tmp_path: Path) -> None:
    data = md_file([{"file": "a.jpg", "detections": [det()]}])
    detections = write_json(tmp_path / "md.json", data)
    digest = hashlib.sha256(detections.read_bytes()).hexdigest()
    run_merge(tmp_path, data, ["path", *NAMES], [[key("a.jpg", 0), 0.5, 0.25, 0.25]])
    assert hashlib.sha256((tmp_path / "md.json").read_bytes()).hexdigest() == digest


def test_refuses_to_overwrite_input(tmp_path: Path, label_index: Path) -> None:
    detections = write_json(tmp_path / "md.json", md_file([]))
    csv_path = write_csv(tmp_path / "probs.csv", ["path", *NAMES], [])
    with pytest.raises(MegaClassifierError) as e:
        merge_classifications(
            csv_path,
            label_index,
            output_json=tmp_path / "." / "md.json",
            classifier_name="c",
            detection_json=detections,
        )
    assert str(e.value) == (
        f"{tmp_path / 'md.json'}: is the input detections file; choose another output file, the input is never modified"
    )


# --- format_version ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "expected"),
    [("1.4", "1.4"), ("1.6", "1.6"), ("1.3", "1.3"), (1.4, "1.4"), ("1.1", "1.3"), (1.0, "1.3"), (None, "1.3")],
)
def test_format_version(tmp_path: Path, version: object, expected: str) -> None:
    data = md_file([{"file": "a.jpg", "detections": [det(1), det(0.5)]}], version=version)
    summary, out, _ = run_merge(tmp_path, data, ["path", *NAMES], [[key("a.jpg", 1), 0.5, 0.25, 0.25]])
    assert out["info"]["format_version"] == expected
    assert summary.format_version == expected
    conf = out["images"][0]["detections"][0]["conf"]
    # integral conf becomes a float only where the version is raised
    raised = version is None or float(version) < 1.3
    assert (type(conf), conf) == ((float, 1.0) if raised else (int, 1))


def test_file_without_info(tmp_path: Path) -> None:
    data = md_file([{"file": "a.jpg", "detections": [det()]}], info=False)
    _, out, _ = run_merge(tmp_path, data, ["path", *NAMES], [[key("a.jpg", 0), 0.5, 0.25, 0.25]])
    assert list(out) == ["info", "detection_categories", "images", "classification_categories"]
    assert list(out["info"]) == ["format_version", "classifier", "classification_completion_time",
                                 "classifier_metadata"]  # fmt: skip
    assert out["info"]["format_version"] == "1.3"


# --- errors --------------------------------------------------------------------------------------


def merge_error(tmp_path: Path, header: list[str], rows: list[list[object]], **options: object) -> str:
    data = md_file([{"file": "a.jpg", "detections": [det()]}])
    with pytest.raises(InputFileError) as e:
        run_merge(tmp_path, data, header, rows, **options)
    assert not (tmp_path / "out").exists()
    return str(e.value)


def test_error_no_class_columns(tmp_path: Path) -> None:
    csv_path, labels = tmp_path / "probs.csv", tmp_path / "label_index.json"
    assert merge_error(tmp_path, ["path", "deer", "elk"], []) == (
        f"{csv_path}: none of the 3 class names in {labels} is a column; was it written with that label index?"
    )
    assert merge_error(tmp_path, ["path"], []) == (
        f'{csv_path}: none of the 3 class names in {labels} is a column and there is no "label" column; '
        "was it written with that label index?"
    )


def test_error_some_class_columns_missing(tmp_path: Path) -> None:
    csv_path, labels = tmp_path / "probs.csv", tmp_path / "label_index.json"
    assert merge_error(tmp_path, ["path", "cervid", "deer"], []) == (
        f'{csv_path}: no column for 2 of the 3 classes in {labels}: "cow", "other"; '
        f'1 columns are not classes in {labels}: "deer"; was it written with that label index?'
    )
    assert merge_error(tmp_path, ["path", *NAMES, "elk"], []) == (
        f'{csv_path}: 1 columns are not classes in {labels}: "elk"; was it written with that label index?'
    )


def test_error_label_options_need_label_column(tmp_path: Path) -> None:
    expected = f'{tmp_path / "probs.csv"}: no "label" column, which --label and --relative-conf need'
    assert merge_error(tmp_path, ["path", *NAMES], [], label="first") == expected
    assert merge_error(tmp_path, ["path", *NAMES], [], relative_conf=True) == expected


def test_error_unknown_label(tmp_path: Path) -> None:
    assert merge_error(tmp_path, ["path", "label"], [[key("a.jpg", 0), "zebra"]]) == (
        f'{tmp_path / "probs.csv"}: a.jpg___crop00_md_v5a.0.0.pt.jpg: label "zebra" is not a class of the label index'
    )


def test_error_bad_number(tmp_path: Path) -> None:
    assert merge_error(tmp_path, ["path", *NAMES], [[key("a.jpg", 0), 0.5, "x", 0.25]]) == (
        f"{tmp_path / 'probs.csv'}: line 2: not a number: 'x'"
    )


# --- merge_probabilities (used by `run`) ---------------------------------------------------------


def test_merge_probabilities_with_file_index_refs(tmp_path: Path) -> None:
    path = write_json(tmp_path / "md.json", md_file([{"file": "a.jpg", "detections": [det(), det()]}]))
    results = load_detections(path)
    counts = merge_probabilities(
        results,
        [(("a.jpg", 1), np.array([0.1, 0.2, 0.7], np.float32)), (key("a.jpg", 0), np.array([0.5, 0.25, 0.25]))],
        class_names=NAMES,
        classifier_name="c",
        threshold=0.15,
        max_classifications=1,
    )
    dets = results.images[0]["detections"]
    assert dets[1]["classifications"] == [["2", 0.7]]
    assert dets[0]["classifications"] == [["0", 0.5]]
    assert results.data["classification_categories"] == {"0": "cervid", "1": "cow", "2": "other"}
    assert results.info["classifier"] == "c"
    assert counts.detections_classified == 2
