"""Issue 22, item 3: an image that must not be read (a decompression bomb) is that image's failure everywhere.

A 68-byte PNG whose header says 30,000 x 30,000 pixels (Pillow's decompression-bomb guard
refuses it) among the real photos of ``../shared/testdata/cameratrap``, with a box on it: every
command that reads images (EXIF times, crops, thumbnails) records it, counts it, and does the rest.
"""

from __future__ import annotations

import copy
import json
import shutil
import struct
import zlib
from pathlib import Path

import pytest
from helpers import invoke, read_csv
from models import TINY_NAMES

BOMB = "Image size (900000000 pixels) exceeds limit of 178956970 pixels, could be decompression bomb DOS attack."
NO_TIME = f"bomb.png: unreadable image, no capture time (cannot read: {BOMB})"


def bomb_png(width: int = 30_000, height: int = 30_000) -> bytes:
    """A valid PNG header claiming ``width`` x ``height`` RGB pixels, with almost no data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + chunk(b"IEND", b"")
    )


@pytest.fixture
def bombed(cameratrap: Path, tmp_path: Path) -> Path:
    """The real photos plus ``bomb.png``; ``md.json`` and a classified ``results.json`` with a box on the bomb."""
    shutil.copytree(cameratrap / "images", tmp_path / "images")
    (tmp_path / "images" / "bomb.png").write_bytes(bomb_png())
    data = json.loads((cameratrap / "detections.json").read_text())
    box = {"category": "1", "conf": 0.9, "bbox": [0.1, 0.1, 0.2, 0.2]}
    data["images"].append({"file": "bomb.png", "detections": [box]})
    (tmp_path / "md.json").write_text(json.dumps(data))
    classified = copy.deepcopy(data)
    for image in classified["images"]:
        for det in image.get("detections") or []:
            if det["category"] == "1" and det["conf"] >= 0.15:
                det["classifications"] = [["0", 0.9]]
    classified["classification_categories"] = {"0": "elephant"}
    (tmp_path / "results.json").write_text(json.dumps(classified))
    (tmp_path / "deployments.csv").write_text("folder,latitude,longitude\n.,-2.333,34.833\n")
    return tmp_path


def test_the_bomb_is_refused_by_pillow(bombed: Path) -> None:
    from PIL import Image

    assert len(bomb_png()) == 68
    with pytest.raises(Image.DecompressionBombError, match="exceeds limit"):
        Image.open(bombed / "images" / "bomb.png")


def test_crop_records_the_bomb_and_crops_the_rest(bombed: Path) -> None:
    result = invoke("crop", bombed / "md.json", bombed / "crops", "--images-dir", bombed / "images", "--logdir", bombed)
    assert result.exit_code == 0, result.output
    (log_path,) = bombed.glob("crop_detections_log_*.json")
    log = json.loads(log_path.read_text())
    assert log["images_failed_download_or_crop"] == ["bomb.png"]
    assert f"bomb.png: {bombed / 'images' / 'bomb.png'}: cannot decode: {BOMB}" in result.output.splitlines()
    assert result.output.splitlines()[-1] == f"83 crops written, 0 existed, 1 images failed: see {log_path}"
    assert len(list((bombed / "crops").rglob("*.jpg"))) == 83


def test_run_records_the_bomb_and_classifies_the_rest(bombed: Path, tiny_model: Path, tiny_categories: Path) -> None:
    out = bombed / "out.json"
    result = invoke(
        "run", bombed / "md.json", tiny_model, "--images-dir", bombed / "images", "--classifier-categories",
        tiny_categories, "--image-size", "32", "--num-workers", "0", "--output-json", out, "--logdir", bombed,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "1 images failed" in result.output.splitlines()[-1]
    merged = {image["file"]: image for image in json.loads(out.read_text())["images"]}
    assert "classifications" not in merged["bomb.png"]["detections"][0]  # left as MegaDetector gave it
    assert "classifications" in merged["ocelot.jpg"]["detections"][0]
    (log_path,) = bombed.glob("run_log_*.json")
    assert json.loads(log_path.read_text())["images_failed_download_or_crop"] == ["bomb.png"]
    assert set(json.loads(out.read_text())["classification_categories"].values()) == set(TINY_NAMES)


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_export_tables_keep_the_bomb_without_a_time(fmt: str, bombed: Path) -> None:
    out = bombed / f"x.{fmt}"
    result = invoke("export", bombed / "results.json", out, "--format", fmt, "--images-dir", bombed / "images")
    assert result.exit_code == 0, result.output
    written = f"{out}, {bombed / 'x_images.csv'}" if fmt == "csv" else f"{out}"
    assert result.output.splitlines() == [NO_TIME, f"Wrote 41 detections of 15 images (11 with EXIF time) to {written}"]
    if fmt == "csv":
        header, rows = read_csv(out)
        (bomb_row,) = [row for row in rows if row[0] == "bomb.png"]
        assert dict(zip(header, bomb_row, strict=True))["datetime"] == ""
        assert dict(zip(header, bomb_row, strict=True))["top_class"] == "elephant"


def test_camtrap_dp_leaves_the_bomb_out_and_counts_it(bombed: Path) -> None:
    result = invoke(
        "export", bombed / "results.json", bombed / "pkg", "--format", "camtrap-dp", "--images-dir",
        bombed / "images", "--deployments", bombed / "deployments.csv", "--contributor", "Jane Doe",
        "--utc-offset", "+02:00",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == NO_TIME
    assert "bomb.png: no EXIF capture time; left out of the Camtrap DP package" in lines
    assert lines[-1] == (
        f"Wrote a Camtrap DP package to {bombed / 'pkg'}: 1 deployments, 11 media, 29 observations; "
        "4 images without EXIF time left out"
    )
    _, media = read_csv(bombed / "pkg" / "media.csv")
    assert len(media) == 11 and not any("bomb" in ",".join(row) for row in media)


def test_smooth_by_exif_sequences_keeps_the_bomb_alone(bombed: Path) -> None:
    out = bombed / "s.json"
    result = invoke("smooth", bombed / "results.json", out, "--level", "sequence", "--images-dir", bombed / "images")
    assert result.exit_code == 0, result.output
    assert NO_TIME in result.output.splitlines()
    assert result.output.splitlines()[-1].endswith("13 sequences, 4 images without a time stayed alone")
    assert [image["file"] for image in json.loads(out.read_text())["images"]][-1] == "bomb.png"


def test_report_counts_the_bomb_and_makes_the_other_thumbnails(bombed: Path) -> None:
    result = invoke("report", bombed / "results.json", bombed / "rep", "--images-dir", bombed / "images")
    assert result.exit_code == 0, result.output
    assert f"bomb.png: {bombed / 'images' / 'bomb.png'}: cannot decode: {BOMB}" in result.output.splitlines()
    assert result.output.splitlines()[-1] == (
        "Report of 41 detections, 3 species on 3 pages, 1 deployments, 3 blank images "
        "(40 thumbnails made, 0 reused, 1 images failed): "
        f"{bombed / 'rep' / 'index.html'}"
    )
