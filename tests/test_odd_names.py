"""Issue 22, item 4: a file name that is not UTF-8 (the byte 0xff) is handled by every command.

One rule (formats/naming.py): results JSON holds ``"\\udcff"`` (``os.fsdecode``'s surrogate),
the probability CSV holds the name's bytes as the file system has them (so ``merge`` finds
the image again), and export tables and the HTML report show the byte as ``\\xff``. The odd
file is made by the test, among real photos of ``../shared/testdata``.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import pytest
import smooth_data
from helpers import invoke, read_csv
from models import DETECTOR, TINY_NAMES

ODD = os.fsdecode(b"\xffocelot.jpg")  # "\udcffocelot.jpg"
SHOWN = "\\xffocelot.jpg"  # how export and the report show it
CROP = f"{ODD}___crop00_{DETECTOR}.jpg"
BOX = {"category": "1", "conf": 0.9, "bbox": [0.2, 0.2, 0.4, 0.4]}


@pytest.fixture
def odd(cameratrap: Path, tmp_path: Path) -> Path:
    """``images/``: the real ocelot under a name holding 0xff, and the real bear; ``md.json``, ``results.json``."""
    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(cameratrap / "images" / "ocelot.jpg", os.fsencode(images) + b"/\xffocelot.jpg")
    shutil.copy(cameratrap / "images" / "american_black_bear.jpg", images / "bear.jpg")
    md = {
        "info": {"format_version": "1.4", "detector": DETECTOR},
        "detection_categories": {"1": "animal"},
        "images": [{"file": ODD, "detections": [BOX]}, {"file": "bear.jpg", "detections": [BOX]}],
    }
    (tmp_path / "md.json").write_text(json.dumps(md))  # ensure_ascii: "\udcff", as results hold it
    classified = smooth_data.results(
        [smooth_data.image(ODD, smooth_data.det(("coyote", 0.6), ("gray wolf", 0.3))),
         smooth_data.image("bear.jpg", smooth_data.det(("elk", 0.9)))]
    )  # fmt: skip
    (tmp_path / "results.json").write_text(json.dumps(classified))
    return tmp_path


def test_the_name_really_is_not_utf8(odd: Path) -> None:
    assert sorted(os.listdir(os.fsencode(odd / "images"))) == [b"bear.jpg", b"\xffocelot.jpg"]
    assert '"\\udcffocelot.jpg"' in (odd / "md.json").read_text()


def test_crop_then_classify_walk_and_classify_d_write_the_names_bytes(odd: Path, tiny_model: Path) -> None:
    crops = odd / "crops"
    assert invoke("crop", odd / "md.json", crops, "--images-dir", odd / "images", "--logdir", odd).exit_code == 0
    for extra in ([], ["-d", odd / "md.json"]):
        out = odd / f"probs{len(extra)}.csv"
        args = ["classify", tiny_model, crops, out, "--image-size", "32", "--num-workers", "0", *extra]
        result = invoke(*args)
        assert result.exit_code == 0, result.output
        lines = out.read_bytes().splitlines()
        assert sorted(line.split(b",")[0] for line in lines[1:]) == [
            f"bear.jpg___crop00_{DETECTOR}.jpg".encode(),
            b"\xffocelot.jpg___crop00_" + DETECTOR.encode() + b".jpg",
        ]


def test_run_output_csv_and_merge_find_the_image_again(odd: Path, tiny_model: Path, tiny_categories: Path) -> None:
    out, probs = odd / "out.json", odd / "out.csv"
    result = invoke(
        "run", odd / "md.json", tiny_model, "--images-dir", odd / "images", "--classifier-categories",
        tiny_categories, "--image-size", "32", "--num-workers", "0", "--output-json", out, "--output-csv", probs,
        "--logdir", odd,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1].startswith("2 crops classified")
    with open(probs, encoding="utf-8", errors="surrogateescape", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["path", *TINY_NAMES] and sorted(r[0] for r in rows[1:]) == sorted(
        [CROP, f"bear.jpg___crop00_{DETECTOR}.jpg"]
    )
    run_classes = {i["file"]: i["detections"][0]["classifications"] for i in json.loads(out.read_text())["images"]}
    merged = odd / "merged.json"
    result = invoke(
        "merge", probs, tiny_categories, "--output-json", merged, "--classifier-name", "tiny",
        "--detection-json", odd / "md.json", "--threshold", "0",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(merged.read_text())
    assert [i["file"] for i in data["images"]] == [ODD, "bear.jpg"]
    merged_top = {i["file"]: i["detections"][0]["classifications"][0][0] for i in data["images"]}
    assert merged_top == {file: classes[0][0] for file, classes in run_classes.items()}


def test_report_shows_the_byte_and_makes_the_thumbnail(odd: Path) -> None:
    result = invoke("report", odd / "results.json", odd / "rep", "--images-dir", odd / "images")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1].endswith(
        "(2 thumbnails made, 0 reused, 0 images failed): " + str(odd / "rep" / "index.html")
    )
    pages = "".join(p.read_text(encoding="utf-8") for p in (odd / "rep").rglob("*.html"))  # valid UTF-8
    assert f"{SHOWN} #0" in pages


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_export_shows_the_byte(fmt: str, odd: Path) -> None:
    out = odd / f"x.{fmt}"
    result = invoke("export", odd / "results.json", out, "--format", fmt, "--images-dir", odd / "images")
    assert result.exit_code == 0, result.output
    if fmt == "csv":
        header, rows = read_csv(out)  # strict UTF-8
        assert [row[0] for row in rows] == [SHOWN, "bear.jpg"]
        assert dict(zip(header, rows[0], strict=True))["top_class"] == "coyote"
    else:
        from openpyxl import load_workbook

        sheet = load_workbook(out, read_only=True)["detections"]
        assert [row[0] for row in sheet.iter_rows(min_row=2, values_only=True)] == [SHOWN, "bear.jpg"]


@pytest.mark.parametrize("step", [["smooth"], ["rollup", "-t", "0.8"], ["restrict", "--taxa", "TAXA"]])
def test_smooth_rollup_restrict_keep_the_name(step: list[str], odd: Path) -> None:
    (odd / "taxa.csv").write_text("latin,common\ncanis latrans,coyote\ncervus canadensis,elk\n")
    args = [str(odd / "taxa.csv") if a == "TAXA" else a for a in step]
    out = odd / "out.json"
    result = invoke(args[0], odd / "results.json", out, *args[1:])
    assert result.exit_code == 0, result.output
    assert '"\\udcffocelot.jpg"' in out.read_text(encoding="ascii")
    assert [i["file"] for i in json.loads(out.read_text())["images"]] == [ODD, "bear.jpg"]
