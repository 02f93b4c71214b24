"""Image loading: EXIF orientation, colour modes, crops that leave the image."""

from __future__ import annotations

import random

import numpy as np
import pytest
from PIL import Image

from megaclassifier.images.loading import SourceImage, decode_image

ROTATIONS = [None, Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180, Image.Transpose.ROTATE_270]


def _noise(mode: str, size=(37, 23)) -> Image.Image:
    rng = np.random.default_rng(1)
    bands = len(Image.new(mode, (1, 1)).getbands())
    data = rng.integers(0, 256, (size[1], size[0], bands), dtype=np.uint8)
    return Image.fromarray(data.squeeze(-1) if bands == 1 else data, mode)


@pytest.mark.parametrize("rotation", ROTATIONS)
@pytest.mark.parametrize("mode", ["RGB", "L", "CMYK", "P"])
def test_crop_of_the_view_equals_cropping_the_rotated_converted_image(rotation, mode):
    stored = _noise("RGB").convert(mode) if mode == "P" else _noise(mode)
    source = SourceImage(stored, rotation)
    full = source.view()
    assert full.size == (source.width, source.height) and full.mode == "RGB"
    rng = random.Random(rotation.value if rotation else 7)
    for _ in range(60):
        left, top = rng.randint(-10, source.width + 5), rng.randint(-10, source.height + 5)
        right, bottom = left + rng.randint(1, 40), top + rng.randint(1, 40)
        reference = np.asarray(full.crop((left, top, right, bottom)))
        # PIL fills out-of-image pixels of an RGB crop with black: that is the reference
        got = np.asarray(source.crop(left, top, right, bottom))
        assert got.shape == reference.shape
        assert (got == reference).all(), (left, top, right, bottom)


@pytest.mark.parametrize(("orientation", "view_size"), [(1, (40, 30)), (3, (40, 30)), (6, (30, 40)), (8, (30, 40))])
def test_exif_orientation_is_read_from_the_file(tmp_path, orientation, view_size):
    exif = Image.Exif()
    exif[274] = orientation
    _noise("RGB", (40, 30)).save(tmp_path / "a.jpg", exif=exif)
    source, warnings = decode_image(tmp_path / "a.jpg")
    assert (source.width, source.height) == view_size and warnings == []


def test_mirrored_orientations_are_left_alone_like_megadetector(tmp_path):
    exif = Image.Exif()
    exif[274] = 5
    _noise("RGB", (40, 30)).save(tmp_path / "a.jpg", exif=exif)
    source, _ = decode_image(tmp_path / "a.jpg")
    assert source.rotation is None and (source.width, source.height) == (40, 30)


def test_truncated_jpeg_decodes_with_a_warning(tmp_path):
    _noise("RGB", (200, 150)).save(tmp_path / "a.jpg", quality=95)
    data = (tmp_path / "a.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) * 2 // 3])
    source, warnings = decode_image(tmp_path / "cut.jpg")
    assert (source.width, source.height) == (200, 150)
    assert len(warnings) == 1 and warnings[0].startswith("truncated image file")
