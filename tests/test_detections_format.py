"""Reading, validating and writing MegaDetector results files (format 1.0-1.6)."""

from __future__ import annotations

import json

import pytest

from megaclassifier.errors import InputFileError
from megaclassifier.formats.detections import load_detections, write_detections

CATEGORIES = {"1": "animal", "2": "person", "3": "vehicle"}


def _write(tmp_path, data, name="md.json"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


def test_reads_every_format_variant(tmp_path):
    data = {
        "images": [
            {
                "file": "a.jpg",
                "max_detection_conf": 0.9,
                "meta": "x",
                "detections": [{"category": "1", "conf": 0.9, "bbox": [0.1, 0.1, 0.2, 0.2]}],
            },
            {"file": "b.jpg", "failure": "image access failure", "detections": None},
            {"file": "c.jpg", "failure": "image access failure"},
            {"file": "C:\\cams\\d.jpg", "detections": [{"category": "1", "bbox": [0, 0, 1, 1]}]},
            {
                "file": "v.mp4",
                "frame_rate": 30.0,
                "frames_processed": [0],
                "detections": [{"category": "1", "conf": 1, "bbox": [0, 0, 1, 1], "frame_number": 0}],
            },
        ],
        "detection_categories": CATEGORIES,
    }
    results = load_detections(_write(tmp_path, data))
    assert results.detector is None and results.info == {}
    assert [im["file"] for im in results.successful_images()] == ["a.jpg", "C:\\cams\\d.jpg", "v.mp4"]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "not valid JSON (line 1 column 2: Expecting property name enclosed in double quotes)"),
        ("[1, 2]", "top level is list, not a JSON object; is this a MegaDetector output file?"),
        ({"info": {}}, 'no "images" list; is this a MegaDetector output file?'),
        ({"images": [{"detections": []}]}, 'images[0] has no "file"'),
        (
            {"images": [{"file": "a.jpg", "detections": [{"conf": 0.5, "bbox": [0, 0, 1, 1]}]}]},
            'images[0] ("a.jpg") detection 0 has no "category"',
        ),
        (
            {"images": [{"file": "a.jpg", "detections": [{"category": "1", "conf": 0.5}]}]},
            'images[0] ("a.jpg") detection 0 has no "bbox"',
        ),
        (
            {"images": [{"file": "a.jpg", "detections": [{"category": "1", "conf": 0.5, "bbox": [0, 0, 1]}]}]},
            'images[0] ("a.jpg") detection 0: "bbox" must be four finite numbers, got [0, 0, 1]',
        ),
        (
            {"images": [{"file": "a.jpg", "detections": [{"category": "1", "conf": 0.5, "bbox": [0, 0, 1, "x"]}]}]},
            'images[0] ("a.jpg") detection 0: "bbox" must be four finite numbers, got [0, 0, 1, "x"]',
        ),
        (
            '{"images": [{"file": "a.jpg", "detections": [{"category": "1", "conf": 0.5, "bbox": [0, 0, NaN, 1]}]}]}',
            'images[0] ("a.jpg") detection 0: "bbox" must be four finite numbers, got [0, 0, NaN, 1]',
        ),
        (
            {"images": [{"file": "a.jpg", "detections": [{"category": "1", "conf": "high", "bbox": [0, 0, 1, 1]}]}]},
            'images[0] ("a.jpg") detection 0: "conf" is not a number: "high"',
        ),
        ({"images": [{"file": "a.jpg", "detections": {}}]}, 'images[0] ("a.jpg"): "detections" is not a list'),
    ],
)
def test_rejects_bad_files_with_one_line(tmp_path, content, problem):
    path = _write(tmp_path, content)
    with pytest.raises(InputFileError) as info:
        load_detections(path)
    assert str(info.value) == f"{path}: {problem}"


def test_missing_file(tmp_path):
    with pytest.raises(InputFileError, match="no such file"):
        load_detections(tmp_path / "nope.json")


def test_write_keeps_key_order_unknown_fields_and_escapes(tmp_path):
    text = (
        '{"info": {"format_version": "1.4", "zzz": 1}, "images": [{"file": "\\u00e9t\\u00e9.jpg", '
        '"detections": [{"category": "1", "conf": 0.1, "bbox": [0.1, 0.2, 0.3, 0.4], "custom": true}]}], '
        '"detection_categories": {"1": "animal"}}'
    )
    results = load_detections(_write(tmp_path, text))
    out = tmp_path / "out.json"
    write_detections(out, results.data)
    written = out.read_text()
    assert written == json.dumps(json.loads(text), indent=1)
    assert '"\\u00e9t\\u00e9.jpg"' in written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["md.json", "out.json"]  # no temp files left
