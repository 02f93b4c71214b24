"""``crop`` end to end on synthetic images with known pixels."""

from __future__ import annotations

import functools
import http.server
import json
import threading
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from megaclassifier.cli import cli
from megaclassifier.crop import crop_detections

CATEGORIES = {"1": "animal", "2": "person", "3": "vehicle"}
DET = "md_v5a.0.0.pt"


def gradient(width: int, height: int) -> Image.Image:
    x = np.arange(width)[None, :].repeat(height, 0)
    y = np.arange(height)[:, None].repeat(width, 1)
    return Image.fromarray(np.stack([x % 256, y % 256, np.full_like(x, 128)], -1).astype(np.uint8))


def write_md(path: Path, images: list[dict], detector: str | None = DET) -> Path:
    data: dict = {"images": images, "detection_categories": CATEGORIES}
    if detector is not None:
        data["info"] = {"format_version": "1.4", "detector": detector}
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


SPEC_DETECTIONS = [
    {"category": "1", "conf": 0.9, "bbox": [0.9, 0.1, 0.2, 0.5]},
    {"category": "2", "conf": 0.9, "bbox": [0.1, 0.1, 0.2, 0.2]},
    {"category": "1", "conf": 0.5, "bbox": [0.1, 0.1, 0.2, 0.2]},
    {"category": "1", "conf": 0.49, "bbox": [0.1, 0.1, 0.2, 0.2]},
    {"category": "1", "conf": 0.8, "bbox": [0, 0, 1, 1]},
    {"category": "4", "conf": 0.8, "bbox": [0.1, 0.1, 0.2, 0.2]},
    {"category": "1", "conf": 0.8, "bbox": [0.5, 0.5, 0.001, 0.001]},
]


@pytest.fixture
def spec_case(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    gradient(200, 100).save(images / "a.png")
    md = write_md(tmp_path / "md.json", [{"file": "a.png", "detections": SPEC_DETECTIONS}])
    return md, images, tmp_path / "crops", tmp_path / "logs"


def test_spec_worked_example(spec_case, caplog):
    md, images, crops, logs = spec_case
    summary = crop_detections(md, crops, images_dir=images, square_crops=True, threshold=0.5, logdir=logs)
    names = sorted(p.name for p in crops.iterdir())
    assert names == [f"a.png___crop00_{DET}.jpg", f"a.png___crop02_{DET}.jpg", f"a.png___crop04_{DET}.jpg"]
    crop0, crop2, crop4 = (np.asarray(Image.open(crops / n)).astype(int) for n in names)
    assert crop0.shape == (50, 50, 3) and crop2.shape == (40, 40, 3) and crop4.shape == (200, 200, 3)
    # JPEG q75: compare decoded pixels with a tolerance; black areas stay black
    expected0 = np.asarray(gradient(200, 100).crop((160, 10, 210, 60))).astype(int)
    assert np.abs(crop0[:, :36] - expected0[:, :36]).mean() < 3
    assert crop0[:, 42:].max() < 20
    assert crop4[:45].max() < 20 and crop4[155:].max() < 20
    assert summary.new_crops == 3 and summary.size_zero == 1 and summary.failed_images == 0
    assert "ignoring detection with category 4 for image a.png" in caplog.text
    log = json.loads(summary.log_path.read_text())
    assert summary.log_path.parent == logs
    assert list(log)[:4] == [
        "images_missing_detections",
        "images_failed_download_or_crop",
        "num_new_downloads",
        "num_new_crops",
    ]
    assert log["num_new_crops"] == 3 and log["images_failed_download_or_crop"] == []


def test_crops_are_rgb_jpeg_quality_75(spec_case):
    md, images, crops, logs = spec_case
    crop_detections(md, crops, images_dir=images, threshold=0.5, logdir=logs)
    with Image.open(crops / f"a.png___crop02_{DET}.jpg") as im:
        assert (im.format, im.mode, im.size) == ("JPEG", "RGB", (40, 20))
        reference = Image.new("RGB", (40, 20))
        reference.paste(gradient(200, 100).crop((20, 10, 60, 30)))
        buffer = Path(logs, "q75.jpg")
        reference.save(buffer, quality=75)
        assert im.quantization == Image.open(buffer).quantization


def test_resume_keeps_existing_crops_and_does_not_open_the_image(spec_case):
    md, images, crops, logs = spec_case
    # without the size-0 box, whose crop never exists and so always needs the image
    write_md(md, [{"file": "a.png", "detections": SPEC_DETECTIONS[:6]}])
    crop_detections(md, crops, images_dir=images, square_crops=True, threshold=0.5, logdir=logs)
    (images / "a.png").unlink()
    again = crop_detections(md, crops, images_dir=images, square_crops=True, threshold=0.5, logdir=logs)
    assert (again.new_crops, again.existing_crops, again.failed_images) == (0, 3, 0)


def test_check_crops_valid_regenerates_broken_crops(spec_case):
    md, images, crops, logs = spec_case
    crop_detections(md, crops, images_dir=images, square_crops=True, threshold=0.5, logdir=logs)
    broken = crops / f"a.png___crop02_{DET}.jpg"
    broken.write_bytes(b"\xff\xd8 broken")
    plain = crop_detections(md, crops, images_dir=images, square_crops=True, threshold=0.5, logdir=logs)
    assert plain.existing_crops == 3
    checked = crop_detections(
        md, crops, images_dir=images, square_crops=True, threshold=0.5, logdir=logs, check_crops_valid=True
    )
    assert (checked.new_crops, checked.existing_crops) == (1, 2)
    assert Image.open(broken).size == (40, 40)


def test_bad_images_are_recorded_counted_and_the_run_goes_on(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    gradient(64, 48).save(images / "good.jpg")
    (images / "empty.jpg").write_bytes(b"")
    (images / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 50)
    (images / "notes.jpg").write_text("not an image")
    box = [{"category": "1", "conf": 0.9, "bbox": [0.1, 0.1, 0.5, 0.5]}]
    files = ["good.jpg", "empty.jpg", "corrupt.jpg", "notes.jpg", "missing.jpg"]
    md = write_md(
        tmp_path / "md.json",
        [{"file": f, "detections": box} for f in files] + [{"file": "failed.jpg", "failure": "x", "detections": None}],
    )
    result = CliRunner().invoke(
        cli, ["crop", str(md), str(tmp_path / "crops"), "--images-dir", str(images), "--logdir", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    log_path = next(tmp_path.glob("crop_detections_log_*.json"))
    assert result.output.splitlines()[-1] == f"1 crops written, 0 existed, 4 images failed: see {log_path}"
    log = json.loads(log_path.read_text())
    assert log["images_missing_detections"] == ["failed.jpg"]
    assert log["images_failed_download_or_crop"] == ["corrupt.jpg", "empty.jpg", "missing.jpg", "notes.jpg"]
    reasons = log["failure_reasons"]
    assert reasons["empty.jpg"] == f"{images / 'empty.jpg'}: empty file (0 bytes)"
    assert reasons["notes.jpg"] == f"{images / 'notes.jpg'}: not an image file (or an unsupported format)"
    assert reasons["missing.jpg"] == f"image not found under {images}"
    assert reasons["corrupt.jpg"].startswith(f"{images / 'corrupt.jpg'}: ")
    assert sorted(p.name for p in (tmp_path / "crops").iterdir()) == [f"good.jpg___crop00_{DET}.jpg"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", "not valid JSON (line 1 column 2: Expecting property name enclosed in double quotes)"),
        ('{"info": {}}', 'no "images" list; is this a MegaDetector output file?'),
    ],
)
def test_bad_detections_file_exits_1_before_writing(tmp_path, content, message):
    md = tmp_path / "md.json"
    md.write_text(content)
    result = CliRunner().invoke(cli, ["crop", str(md), str(tmp_path / "crops"), "--logdir", str(tmp_path / "logs")])
    assert result.exit_code == 1
    assert result.output == f"Error: {md}: {message}\n"
    assert not (tmp_path / "crops").exists() and not (tmp_path / "logs").exists()


def test_usage_errors_exit_2(tmp_path):
    result = CliRunner().invoke(cli, ["crop", str(tmp_path / "nope.json"), str(tmp_path / "crops")])
    assert result.exit_code == 2
    assert "does not exist" in result.output
    md = write_md(tmp_path / "md.json", [])
    result = CliRunner().invoke(cli, ["crop", str(md), str(tmp_path / "c"), "--threshold", "1.5"])
    assert result.exit_code == 2


def test_subfolders_unicode_many_detections_and_unsafe_paths(tmp_path):
    images = tmp_path / "images"
    (images / "cam 1" / "día").mkdir(parents=True)
    gradient(300, 200).save(images / "cam 1" / "día" / "ñandú.jpg")
    absolute = tmp_path / "abs" / "x.jpg"
    absolute.parent.mkdir()
    gradient(100, 100).save(absolute)
    gradient(100, 100).save(tmp_path / "up.jpg")
    many = [{"category": "1", "conf": 0.5, "bbox": [0.001 * i, 0.1, 0.3, 0.3]} for i in range(120)]
    one = [{"category": "1", "conf": 0.9, "bbox": [0.1, 0.1, 0.5, 0.5]}]
    md = write_md(
        tmp_path / "md.json",
        [
            {"file": "cam 1/día/ñandú.jpg", "detections": many},
            {"file": str(absolute), "detections": one},
            {"file": "../up.jpg", "detections": one},
            {"file": "cam 1\\día\\ñandú.jpg", "detections": one},
        ],
    )
    crops = tmp_path / "crops"
    # ../up.jpg leads out of --images-dir: read only with allow_outside_images_dir (refused: test_path_rules.py)
    summary = crop_detections(md, crops, images_dir=images, logdir=tmp_path, allow_outside_images_dir=True)
    assert (summary.failed_images, summary.new_crops, summary.existing_crops) == (0, 122, 1)
    made = sorted(p.relative_to(crops).as_posix() for p in crops.rglob("*.jpg"))
    assert f"cam 1/día/ñandú.jpg___crop00_{DET}.jpg" in made
    assert f"cam 1/día/ñandú.jpg___crop99_{DET}.jpg" in made
    assert f"cam 1/día/ñandú.jpg___crop119_{DET}.jpg" in made
    assert f"{absolute.relative_to('/').as_posix()}___crop00_{DET}.jpg" in made
    assert f"__/up.jpg___crop00_{DET}.jpg" in made
    # the Windows-style twin of the first image lands in the same folders
    assert len([m for m in made if m.startswith("cam 1/día/ñandú.jpg___crop00")]) == 1
    assert all(p.resolve().is_relative_to(crops.resolve()) for p in crops.rglob("*"))


def test_detector_version_rules(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    gradient(50, 50).save(images / "a.jpg")
    one = [{"file": "a.jpg", "detections": [{"category": "1", "conf": 0.9, "bbox": [0, 0, 1, 1]}]}]
    md = write_md(tmp_path / "md.json", one, detector=None)
    crop_detections(md, tmp_path / "c1", images_dir=images, logdir=tmp_path)
    assert [p.name for p in (tmp_path / "c1").iterdir()] == ["a.jpg___crop00_unknown.jpg"]
    crop_detections(md, tmp_path / "c2", images_dir=images, logdir=tmp_path, detector_version="md_v4.1.0.pb")
    assert [p.name for p in (tmp_path / "c2").iterdir()] == ["a.jpg___crop00_md_v4.1.0.pb.jpg"]
    md2 = write_md(tmp_path / "md2.json", one)
    result = CliRunner().invoke(cli, ["crop", str(md2), str(tmp_path / "c3"), "-v", "other", "-i", str(images)])
    assert result.exit_code == 1
    assert result.output == (
        f'Error: {md2}: info.detector is "{DET}" but --detector-version is "other"; '
        "drop --detector-version or make them agree\n"
    )
    gt = write_md(tmp_path / "gt.json", [{**one[0], "is_ground_truth": True}])
    crop_detections(gt, tmp_path / "c4", images_dir=images, logdir=tmp_path)
    assert [p.name for p in (tmp_path / "c4").iterdir()] == ["a.jpg___crop00.jpg"]


def test_threads_give_the_same_crops(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    entries = []
    for i in range(12):
        gradient(80 + i, 60).save(images / f"{i}.jpg")
        box = {"category": "1", "conf": 0.9, "bbox": [0.2, 0.2, 0.5, 0.4]}
        entries.append({"file": f"{i}.jpg", "detections": [box]})
    md = write_md(tmp_path / "md.json", entries)
    crop_detections(md, tmp_path / "one", images_dir=images, logdir=tmp_path, square_crops=True)
    crop_detections(md, tmp_path / "four", images_dir=images, logdir=tmp_path, square_crops=True, threads=4)
    for p in (tmp_path / "one").iterdir():
        assert p.read_bytes() == (tmp_path / "four" / p.name).read_bytes()


@pytest.fixture
def http_server(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_container_url_over_http_and_save_full_images(tmp_path, http_server):
    root, url = http_server
    (root / "cam 2").mkdir()
    gradient(120, 90).save(root / "cam 2" / "b.jpg")
    local = tmp_path / "images"
    local.mkdir()
    gradient(60, 40).save(local / "a.jpg")
    box = [{"category": "1", "conf": 0.9, "bbox": [0.1, 0.1, 0.5, 0.5]}]
    md = write_md(
        tmp_path / "md.json",
        [
            {"file": "a.jpg", "detections": box},
            {"file": "cam 2/b.jpg", "detections": box},
            {"file": "gone.jpg", "detections": box},
        ],
    )
    summary = crop_detections(
        md, tmp_path / "crops", images_dir=local, container_url=url + "/", save_full_images=True, logdir=tmp_path
    )
    assert (summary.new_crops, summary.new_downloads) == (2, 1)
    assert list(summary.failures) == ["gone.jpg"]
    assert "not found at" in summary.failures["gone.jpg"] or "download failed" in summary.failures["gone.jpg"]
    assert (local / "cam 2" / "b.jpg").read_bytes() == (root / "cam 2" / "b.jpg").read_bytes()
    assert Image.open(tmp_path / "crops" / "cam 2" / f"b.jpg___crop00_{DET}.jpg").size == (60, 45)


def test_save_full_images_needs_images_dir(tmp_path):
    md = write_md(tmp_path / "md.json", [])
    result = CliRunner().invoke(cli, ["crop", str(md), str(tmp_path / "c"), "--save-full-images", "-c", "file:///x"])
    assert result.exit_code == 1
    assert result.output == "Error: --save-full-images needs --images-dir: that is where fetched images are saved\n"


def test_greyscale_png_becomes_rgb(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(np.full((100, 200), 90, np.uint8), "L").save(images / "g.png")
    md = write_md(
        tmp_path / "md.json",
        [{"file": "g.png", "detections": [{"category": "1", "conf": 0.9, "bbox": [0.25, 0.25, 0.5, 0.5]}]}],
    )
    crop_detections(md, tmp_path / "crops", images_dir=images, square_crops=True, logdir=tmp_path)
    with Image.open(tmp_path / "crops" / f"g.png___crop00_{DET}.jpg") as im:
        assert (im.mode, im.size) == ("RGB", (100, 100))
        assert abs(np.asarray(im).astype(int) - 90).max() <= 2
