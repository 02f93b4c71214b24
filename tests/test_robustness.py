"""Per-image and per-detection failures in ``crop`` and ``run``: the run goes on, the log says why.

* out-of-range boxes (issue 12 item 1) are failures of that detection alone;
* an OS error about one image (a 300-character name) is that image's failure;
* relative paths that lead out of ``--images-dir`` are refused before anything is opened;
* crops are never written through a symbolic link inside CROPS_DIR;
* two runs in the same second keep both logs.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from models import DETECTOR
from PIL import Image

from megaclassifier.cli import cli

BAD_BOXES = {
    1: ([0, 0, 100, 100], "width 100 is larger than the image (more than 1)"),
    2: ([0, 0, 20, 20], "width 20 is larger than the image (more than 1)"),
    3: ([0.1, 0.1, 1e9, 1e9], "width 1e+09 is larger than the image (more than 1)"),
}
GOOD = {"category": "1", "conf": 0.9, "bbox": [0.1, 0.1, 0.5, 0.5]}


def picture(path: Path, width: int = 64, height: int = 48, value: int = 100) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((height, width, 3), value, np.uint8)).save(path)
    return path


def write_md(path: Path, images: list[dict]) -> Path:
    data = {
        "info": {"format_version": "1.4", "detector": DETECTOR},
        "detection_categories": {"1": "animal"},
        "images": images,
    }
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def invoke(*args: object) -> Result:
    result = CliRunner().invoke(cli, ["-q", *map(str, args)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def only_log(folder: Path, prefix: str) -> dict:
    (path,) = folder.glob(f"{prefix}_*.json")
    return json.loads(path.read_text(encoding="utf-8"))


def key(file: str, index: int) -> str:
    return f"{file}___crop{index:02d}_{DETECTOR}.jpg"


@pytest.fixture
def bad_boxes(tmp_path: Path) -> tuple[Path, Path]:
    images = tmp_path / "images"
    picture(images / "a.jpg")
    picture(images / "b.jpg", value=200)
    detections = [GOOD] + [{"category": "1", "conf": 0.9, "bbox": bbox} for bbox, _ in BAD_BOXES.values()]
    md = write_md(
        tmp_path / "md.json", [{"file": "a.jpg", "detections": detections}, {"file": "b.jpg", "detections": [GOOD]}]
    )
    return md, images


def expected_invalid() -> dict[str, str]:
    return {key("a.jpg", i): reason for i, (_, reason) in BAD_BOXES.items()}


@pytest.mark.parametrize("threads", [1, 2])
def test_crop_out_of_range_boxes_fail_alone(bad_boxes, tmp_path, threads):
    md, images = bad_boxes
    crops = tmp_path / "crops"
    result = invoke("crop", md, crops, "--images-dir", images, "--logdir", tmp_path, "--threads", threads)
    assert result.exit_code == 0
    log_path = next(tmp_path.glob("crop_detections_log_*.json"))
    assert result.output.splitlines()[-1] == (
        f"2 crops written, 0 existed, 0 images failed, 3 boxes invalid: see {log_path}"
    )
    log = json.loads(log_path.read_text())
    assert log["num_invalid_boxes"] == 3 and log["invalid_boxes"] == expected_invalid()
    assert log["images_failed_download_or_crop"] == [] and log["num_new_crops"] == 2
    assert sorted(p.name for p in crops.iterdir()) == [key("a.jpg", 0), key("b.jpg", 0)]
    assert Image.open(crops / key("a.jpg", 0)).size == (32, 24)


@pytest.mark.parametrize("workers", [0, 1])
def test_run_out_of_range_boxes_fail_alone(bad_boxes, tmp_path, tiny_model, tiny_categories, workers):
    md, images = bad_boxes
    out = tmp_path / "merged.json"
    result = invoke(
        "run",
        md,
        tiny_model,
        "--output-json",
        out,
        "--images-dir",
        images,
        "--classifier-categories",
        tiny_categories,
        "--backend",
        "torch",
        "--num-workers",
        workers,
        "--image-size",
        32,
        "--logdir",
        tmp_path,
    )
    assert result.exit_code == 0
    assert (
        ", 2 detections merged, 2 images with boxes (0 without, not opened), 0 images failed, 3 boxes invalid: "
        in result.output.splitlines()[-1]
    )
    log = only_log(tmp_path, "run_log")
    assert log["invalid_boxes"] == expected_invalid()
    merged = {image["file"]: image["detections"] for image in json.loads(out.read_text())["images"]}
    assert [("classifications" in det) for det in merged["a.jpg"]] == [True, False, False, False]
    assert "classifications" in merged["b.jpg"][0]


def test_a_300_character_name_is_that_images_failure(tmp_path, tiny_model, tiny_categories):
    images = tmp_path / "images"
    picture(images / "good.jpg")
    long_dir = "d" * 300 + "/x.jpg"  # a folder name too long: looking the image up fails
    long_crop = "c" * 240 + ".jpg"  # the image exists, its crop's name is too long to write
    picture(images / long_crop)
    md = write_md(tmp_path / "md.json", [{"file": f, "detections": [GOOD]} for f in ("good.jpg", long_dir, long_crop)])

    result = invoke("crop", md, tmp_path / "crops", "--images-dir", images, "--logdir", tmp_path)
    assert result.exit_code == 0
    log = only_log(tmp_path, "crop_detections_log")
    assert sorted(log["failure_reasons"]) == sorted([long_dir, long_crop])
    assert log["failure_reasons"][long_dir].endswith(": File name too long")
    assert log["failure_reasons"][long_crop].startswith("cannot write crop: [Errno 36] File name too long")
    assert [p.name for p in (tmp_path / "crops").iterdir()] == [key("good.jpg", 0)]

    out = tmp_path / "run" / "merged.json"
    result = invoke(
        "run",
        md,
        tiny_model,
        "--output-json",
        out,
        "--images-dir",
        images,
        "--classifier-categories",
        tiny_categories,
        "--backend",
        "torch",
        "--num-workers",
        0,
        "--image-size",
        32,
        "--save-crops",
        tmp_path / "run" / "crops",
        "--logdir",
        tmp_path / "run",
    )
    assert result.exit_code == 0
    assert (
        ", 1 detections merged, 3 images with boxes (0 without, not opened), 2 images failed: "
        in result.output.splitlines()[-1]
    )
    log = only_log(tmp_path / "run", "run_log")
    assert log["failure_reasons"][long_dir].endswith(": File name too long")
    # the same words as crop: both go through the crop core
    assert log["failure_reasons"][long_crop].startswith("cannot write crop: [Errno 36] File name too long")


@pytest.fixture
def outside_case(tmp_path: Path) -> tuple[Path, Path, Path]:
    images = tmp_path / "images"
    picture(images / "sub" / "in.jpg")
    picture(tmp_path / "outside.jpg")
    (tmp_path / "notes.txt").write_text("secret")
    absolute = picture(tmp_path / "elsewhere" / "abs.jpg")
    files = [
        "sub/in.jpg",
        "sub/../sub/in.jpg",
        "../outside.jpg",
        "sub/../../outside.jpg",
        "..\\notes.txt",
        "../missing.jpg",
        str(absolute),
    ]
    md = write_md(tmp_path / "md.json", [{"file": f, "detections": [GOOD]} for f in files])
    return md, images, absolute


def refused(file: str, images: Path) -> str:
    return f"refused: {file!r} leads outside --images-dir {images} (--allow-outside-images-dir allows it)"


def test_crop_refuses_paths_outside_images_dir(outside_case, tmp_path):
    md, images, absolute = outside_case
    result = invoke("crop", md, tmp_path / "crops", "--images-dir", images, "--logdir", tmp_path)
    assert result.exit_code == 0
    log = only_log(tmp_path, "crop_detections_log")
    # refused before opening: an existing file, a text file and a missing one give the same answer
    assert log["failure_reasons"] == {
        f: refused(f, images) for f in ("../outside.jpg", "sub/../../outside.jpg", "..\\notes.txt", "../missing.jpg")
    }
    assert log["num_new_crops"] == 3  # sub/in.jpg twice (two entries), and the absolute path as the file says

    allowed = tmp_path / "allowed"
    result = invoke(
        "crop", md, allowed / "crops", "--images-dir", images, "--logdir", allowed, "--allow-outside-images-dir"
    )
    reasons = only_log(allowed, "crop_detections_log")["failure_reasons"]
    assert sorted(reasons) == ["../missing.jpg", "..\\notes.txt"]
    assert reasons["..\\notes.txt"].endswith("notes.txt: not an image file (or an unsupported format)")
    assert (allowed / "crops" / "__" / key("outside.jpg", 0)).is_file()


def test_run_refuses_paths_outside_images_dir(outside_case, tmp_path, tiny_model, tiny_categories):
    md, images, _ = outside_case
    out = tmp_path / "merged.json"
    result = invoke(
        "run",
        md,
        tiny_model,
        "--output-json",
        out,
        "--images-dir",
        images,
        "--classifier-categories",
        tiny_categories,
        "--backend",
        "torch",
        "--num-workers",
        0,
        "--image-size",
        32,
        "--logdir",
        tmp_path,
    )
    assert result.exit_code == 0
    reasons = only_log(tmp_path, "run_log")["failure_reasons"]
    assert reasons == {
        f: refused(f, images) for f in ("../outside.jpg", "sub/../../outside.jpg", "..\\notes.txt", "../missing.jpg")
    }
    result = invoke(
        "run",
        md,
        tiny_model,
        "--output-json",
        out,
        "--images-dir",
        images,
        "--classifier-categories",
        tiny_categories,
        "--backend",
        "torch",
        "--num-workers",
        0,
        "--image-size",
        32,
        "--logdir",
        tmp_path / "allowed",
        "--allow-outside-images-dir",
    )
    assert sorted(only_log(tmp_path / "allowed", "run_log")["failure_reasons"]) == ["../missing.jpg", "..\\notes.txt"]


def test_crop_never_writes_through_a_symlink_in_crops_dir(tmp_path):
    images = tmp_path / "images"
    picture(images / "cam" / "a.jpg")
    picture(images / "b.jpg")
    outside = tmp_path / "outside"
    outside.mkdir()
    crops = tmp_path / "crops"
    crops.mkdir()
    (crops / "cam").symlink_to(outside, target_is_directory=True)
    md = write_md(tmp_path / "md.json", [{"file": f, "detections": [GOOD]} for f in ("cam/a.jpg", "b.jpg")])
    result = invoke("crop", md, crops, "--images-dir", images, "--logdir", tmp_path)
    assert result.exit_code == 0
    reasons = only_log(tmp_path, "crop_detections_log")["failure_reasons"]
    assert reasons == {
        "cam/a.jpg": (
            f"cannot write crop: [Errno 40] is a symbolic link; crops are never written through one: '{crops / 'cam'}'"
        )
    }
    assert list(outside.iterdir()) == []
    assert (crops / key("b.jpg", 0)).is_file()


def test_a_link_at_a_crop_path_is_replaced_not_followed(tmp_path):
    images = tmp_path / "images"
    picture(images / "a.jpg")
    victim = tmp_path / "victim.jpg"
    picture(victim, value=10)
    before = victim.read_bytes()
    crops = tmp_path / "crops"
    crops.mkdir()
    (crops / key("a.jpg", 0)).symlink_to(victim)
    md = write_md(tmp_path / "md.json", [{"file": "a.jpg", "detections": [GOOD]}])
    result = invoke("crop", md, crops, "--images-dir", images, "--logdir", tmp_path)
    assert result.output.startswith("1 crops written, 0 existed, 0 images failed")
    assert victim.read_bytes() == before
    assert not (crops / key("a.jpg", 0)).is_symlink()
    assert Image.open(crops / key("a.jpg", 0)).getpixel((0, 0)) == (100, 100, 100)


def test_two_runs_in_the_same_second_keep_both_logs(tmp_path, monkeypatch):
    images = tmp_path / "images"
    picture(images / "a.jpg")
    md = write_md(tmp_path / "md.json", [{"file": "a.jpg", "detections": [GOOD]}])
    monkeypatch.setattr(time, "strftime", lambda fmt, *a: "20261126_070000")
    lines = [
        invoke("crop", md, tmp_path / "crops", "--images-dir", images, "--logdir", tmp_path).output for _ in range(2)
    ]
    first, second = (
        tmp_path / "crop_detections_log_20261126_070000.json",
        tmp_path / "crop_detections_log_20261126_070000_1.json",
    )
    assert lines[0].endswith(f"see {first}\n") and lines[1].endswith(f"see {second}\n")
    assert json.loads(first.read_text())["num_new_crops"] == 1
    assert json.loads(second.read_text())["num_existing_crops"] == 1
