"""``preprocess_image`` is bit-identical to the reference's torchvision transform."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from megaclassifier.preprocess import load_crop, normalize, preprocess_image, resize_and_crop, resized_size

torchvision = pytest.importorskip("torchvision")
from torchvision import transforms as T  # noqa: E402

MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]


def reference_transform(size: int):
    return T.Compose(
        [
            T.Resize(size, interpolation=T.InterpolationMode.BICUBIC),
            T.CenterCrop(size),
            T.ToTensor(),
            T.Normalize(mean=MEAN, std=STD),
        ]
    )


def random_image(width: int, height: int, mode: str = "RGB", seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    return image if mode == "RGB" else image.convert(mode)


@pytest.mark.parametrize(
    ("width", "height"),
    [
        (64, 64),
        (300, 300),
        (301, 300),
        (300, 301),
        (200, 100),
        (100, 200),
        (7, 5),
        (1, 50),
        (50, 1),
        (640, 480),
        (333, 999),
        (65, 64),
        (63, 64),
        (127, 64),
    ],
)
@pytest.mark.parametrize("size", [64, 300])
def test_bit_identical_to_torchvision(width, height, size):
    image = random_image(width, height, seed=width * 1000 + height)
    ours = preprocess_image(image, size)
    expected = reference_transform(size)(image).numpy()
    assert ours.dtype == np.float32 and ours.shape == (3, size, size)
    np.testing.assert_array_equal(ours, expected)


@pytest.mark.parametrize("mode", ["L", "CMYK", "RGBA", "P", "LA", "I;16"])
def test_other_modes_are_converted_to_rgb_first(mode):
    image = random_image(90, 70, mode=mode, seed=3) if mode != "I;16" else Image.new("I;16", (90, 70), 1000)
    expected = reference_transform(64)(image.convert("RGB")).numpy()
    np.testing.assert_array_equal(preprocess_image(image, 64), expected)


def test_resized_size_truncates_the_long_side():
    # 300 * 301 / 200 = 451.5 -> 451, as torchvision's int()
    assert resized_size(200, 301, 300) == (300, 451)
    assert resized_size(301, 200, 300) == (451, 300)
    assert resized_size(300, 300, 300) == (300, 300)


def test_centre_crop_rounds_half_to_even():
    # 300 x 301 -> crop offset round(0.5) = 0 (Python rounds half to even, as torchvision)
    image = Image.fromarray(np.arange(301 * 300 * 3, dtype=np.uint32).reshape(301, 300, 3).astype(np.uint8))
    ours = preprocess_image(image, 300)
    expected = reference_transform(300)(image).numpy()
    np.testing.assert_array_equal(ours, expected)


def test_real_crops_match_torchvision_default_loader(real_crops):
    from torchvision.datasets.folder import pil_loader

    paths = sorted(real_crops.iterdir())[:6]
    for path in paths:
        expected = reference_transform(300)(pil_loader(str(path))).numpy()
        np.testing.assert_array_equal(load_crop(path, 300), expected)


def test_load_crop_raises_on_a_broken_file(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(OSError):
        load_crop(bad, 64)


def test_resize_and_crop_then_normalize_is_preprocess_image():
    images = [random_image(w, h, seed=w + h) for w, h in [(90, 70), (64, 64), (40, 130)]]
    pixels = [resize_and_crop(image, 64) for image in images]
    assert all(p.dtype == np.uint8 and p.shape == (64, 64, 3) and p.flags.c_contiguous for p in pixels)
    expected = np.stack([preprocess_image(image, 64) for image in images])
    np.testing.assert_array_equal(np.stack([normalize(p) for p in pixels]), expected)
    np.testing.assert_array_equal(normalize(np.stack(pixels)), expected)  # a whole batch at once
