"""``crop`` on the real camera-trap images in ../shared/testdata."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from megaclassifier.crop import crop_detections

DET = "md_v5a.0.0.pt"

# threshold 0.15, --square-crops: every crop and its size (independently checked
# by hand for a few: african_elephants.jpg is 2048x1536, detection 0 has
# bbox [0.7041, 0.4765, 0.1108, 0.125] -> bw = int(226.92) = 226, bh = 192, S = 226)
EXPECTED_SQUARE_015 = {
    "african_elephants.jpg": [226, 256, 213, 256, 175, 170],
    "african_elephants_bw.jpg": [228, 213, 261, 259, 177, 172],
    "african_elephants_cmyk.jpg": [226, 256, 212, 257, 175, 170, 229],
    "african_elephants_truncated_file.jpg": [225, 255, 211, 257, 175, 171, 213],
    "african_elephants_with_exif_orientation.jpg": [226, 256, 212, 256, 175, 171],
    "american_black_bear.jpg": [661],
    "domestic_cattle.jpg": [241, 198, 227],
    "domestic_dog.jpg": [1056],
    "ocelot.jpg": [544],
}


@pytest.fixture(scope="module")
def real_crops(cameratrap, tmp_path_factory):
    out = tmp_path_factory.mktemp("real")
    summary = crop_detections(
        cameratrap / "detections.json",
        out / "crops",
        images_dir=cameratrap / "images",
        square_crops=True,
        threshold=0.15,
        threads=2,
        logdir=out,
    )
    return summary, out / "crops"


def test_every_crop_name_size_and_mode(real_crops):
    summary, crops = real_crops
    found = {}
    for path in sorted(crops.iterdir()):
        file, _, rest = path.name.partition("___crop")
        index, _, detector = rest.partition("_")
        assert detector == f"{DET}.jpg"
        with Image.open(path) as im:
            assert im.mode == "RGB" and im.format == "JPEG"
            assert im.width == im.height
            found.setdefault(file, []).append((int(index), im.width))
    assert {f: [w for _, w in sorted(v)] for f, v in found.items()} == EXPECTED_SQUARE_015
    assert summary.new_crops == sum(len(v) for v in EXPECTED_SQUARE_015.values()) == 38
    assert summary.failed_images == 0


def test_crop_indices_count_every_detection(real_crops, cameratrap):
    _, crops = real_crops
    md = json.loads((cameratrap / "detections.json").read_text())
    for image in md["images"]:
        expected = [i for i, d in enumerate(image["detections"]) if d["category"] == "1" and d["conf"] >= 0.15]
        made = sorted(int(p.name.split("___crop")[1][:2]) for p in crops.glob(image["file"] + "___crop*"))
        assert made == expected, image["file"]


def test_truncated_file_is_decoded_with_a_warning(real_crops):
    summary, _ = real_crops
    assert list(summary.warnings) == ["african_elephants_truncated_file.jpg"]
    assert "truncated image file" in summary.warnings["african_elephants_truncated_file.jpg"][0]
    log = json.loads(summary.log_path.read_text())
    assert list(log["warnings"]) == ["african_elephants_truncated_file.jpg"]


def _similarity(a: Image.Image, b: Image.Image) -> float:
    """Normalised cross-correlation of two crops at 64x64 greyscale."""
    x = np.asarray(a.convert("L").resize((64, 64)), float).ravel()
    y = np.asarray(b.convert("L").resize((64, 64)), float).ravel()
    x, y = x - x.mean(), y - y.mean()
    return float(x @ y / np.sqrt((x @ x) * (y @ y)))


def test_exif_rotated_image_gives_the_same_elephants(real_crops):
    _, crops = real_crops
    plain = sorted(crops.glob("african_elephants.jpg___crop*"))
    rotated = sorted(crops.glob("african_elephants_with_exif_orientation.jpg___crop*"))
    for r in rotated:
        best = max(_similarity(Image.open(r), Image.open(p)) for p in plain)
        assert best > 0.9, r.name


def test_ignoring_exif_would_crop_something_else(cameratrap, real_crops):
    _, crops = real_crops
    raw = Image.open(cameratrap / "images" / "african_elephants_with_exif_orientation.jpg").convert("RGB")
    assert raw.size == (1536, 2048)
    x, y, w, h = 0.7041, 0.4765, 0.1108, 0.125  # detection 0, relative to the rotated 2048x1536 view
    wrong = raw.crop((int(x * 1536), int(y * 2048), int(x * 1536) + int(w * 1536), int(y * 2048) + int(h * 2048)))
    right = Image.open(crops / f"african_elephants.jpg___crop00_{DET}.jpg")
    assert _similarity(wrong, right) < 0.5


def test_lila31_format_1_1_crops_without_failures(lila31, tmp_path):
    summary = crop_detections(
        lila31 / "detections.json", tmp_path / "crops", images_dir=lila31 / "images", threshold=0.2, logdir=tmp_path
    )
    md = json.loads((lila31 / "detections.json").read_text())
    expected = sum(1 for im in md["images"] for d in im["detections"] if d["category"] == "1" and d["conf"] >= 0.2)
    assert summary.failed_images == 0
    assert summary.new_crops + summary.size_zero == expected
    assert all(
        p.name.endswith("_megadetector_v5_camonly_mosaic_xlarge_dist_5a_last.jpg")
        for p in (tmp_path / "crops").iterdir()
    )
