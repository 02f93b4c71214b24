"""Tests of megaclassifier.formats.results_table: results as detection rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from megaclassifier.errors import InputFileError
from megaclassifier.formats.results_table import DetectionRow, image_folder, read_results_table


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "results.json"
    path.write_text(json.dumps(data))
    return path


RESULTS = {
    "info": {"detector": "md_v5a.0.0.pt", "classifier": "clf"},
    "detection_categories": {"1": "animal", "2": "person"},
    "classification_categories": {"0": "deer", "1": "elk"},
    "images": [
        {"file": "cam1/a.jpg", "detections": [
            {"category": "1", "conf": 0.9, "bbox": [0.1, 0.2, 0.3, 0.4], "classifications": [["1", 0.3], ["0", 0.6]]},
            {"category": "1", "conf": 0.1, "bbox": [0, 0, 1, 1], "classifications": [["0", 1.0]]},
            {"category": "2", "conf": 0.5, "bbox": [0, 0, 0.5, 0.5]},
            {"category": "7", "bbox": [0, 0, 0.5, 0.5]},
        ]},
        {"file": "cam2\\b.jpg", "detections": []},
        {"file": "c.jpg", "failure": "image access failure", "detections": None},
    ],
}  # fmt: skip


def test_rows_classes_threshold_and_failures(tmp_path: Path) -> None:
    table = read_results_table(write(tmp_path, RESULTS), threshold=0.15)
    assert table.rows == [
        DetectionRow("cam1/a.jpg", 0, "animal", 0.9, (0.1, 0.2, 0.3, 0.4), "deer", 0.6, "elk", 0.3),
        DetectionRow("cam1/a.jpg", 2, "person", 0.5, (0.0, 0.0, 0.5, 0.5)),
        DetectionRow("cam1/a.jpg", 3, "7", None, (0.0, 0.0, 0.5, 0.5)),
    ]
    assert [(r.label, r.score) for r in table.rows] == [("deer", 0.6), ("person", 0.5), ("7", 1.0)]
    assert table.images == ["cam1/a.jpg", "cam2\\b.jpg"]
    assert table.failures == {"c.jpg": "image access failure"}
    assert (table.classifier, table.detector, table.classified) == ("clf", "md_v5a.0.0.pt", True)


def test_plain_megadetector_file(tmp_path: Path) -> None:
    data = {k: v for k, v in RESULTS.items() if k != "classification_categories"}
    data["info"] = {"detector": "md"}
    table = read_results_table(write(tmp_path, data), threshold=0.0)
    assert len(table.rows) == 4
    assert (table.classifier, table.classified) == (None, False)


def test_not_a_results_file(tmp_path: Path) -> None:
    path = write(tmp_path, {"nothing": 1})
    with pytest.raises(InputFileError, match=r'results.json: no "images" list; is this a MegaDetector output file\?'):
        read_results_table(path)


@pytest.mark.parametrize(
    ("file", "folder"),
    [
        ("a.jpg", "."),
        ("cam1/a.jpg", "cam1"),
        ("site\\cam1\\a.jpg", "site/cam1"),
        ("/abs/a.jpg", "/abs"),
        ("/a.jpg", "."),
    ],
)
def test_image_folder(file: str, folder: str) -> None:
    assert image_folder(file) == folder
