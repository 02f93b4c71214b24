"""The reference crop arithmetic (spec section 1), exact."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from megaclassifier.crop.geometry import CropBox, box_problem, crop_box, extract_crop


@pytest.mark.parametrize(
    ("bbox", "size", "square", "expected"),
    [
        # spec worked examples on a 200x100 image, --square-crops
        ([0.9, 0.1, 0.2, 0.5], (200, 100), True, CropBox(160, 10, 210, 60)),
        ([0.1, 0.1, 0.2, 0.2], (200, 100), True, CropBox(20, 0, 60, 40)),
        ([0, 0, 1, 1], (200, 100), True, CropBox(0, 0, 200, 100, pad_to=200)),
        # the spec's greyscale example: 100x100 (its text says (25,0)-(125,100), but its own
        # formulas give xmin = int(0.25 * 200) = 50 and no horizontal shift since S == bw)
        ([0.25, 0.25, 0.5, 0.5], (200, 100), True, CropBox(50, 0, 150, 100)),
        # without --square-crops
        ([0.1, 0.1, 0.2, 0.2], (200, 100), False, CropBox(20, 10, 60, 30)),
        # width and height are truncated independently of xmin/ymin
        ([0.333, 0.333, 0.333, 0.333], (100, 100), False, CropBox(33, 33, 66, 66)),
        # the clamp uses W - bw, not W - S: the square reaches past the bottom edge
        ([0.1, 0.9, 0.5, 0.1], (100, 100), True, CropBox(10, 70, 60, 120)),
        # a box at the left edge clamps to 0
        ([0.0, 0.4, 0.1, 0.3], (100, 100), True, CropBox(0, 40, 30, 70)),
        # tall box: centred horizontally, int() of a half
        ([0.5, 0.0, 0.05, 0.5], (100, 100), True, CropBox(28, 0, 78, 50)),
        # a full-frame box on a portrait image pads horizontally
        ([0, 0, 1, 1], (100, 200), True, CropBox(0, 0, 100, 200, pad_to=200)),
    ],
)
def test_crop_box(bbox, size, square, expected):
    assert crop_box(bbox, *size, square=square) == expected


@pytest.mark.parametrize(
    ("bbox", "square"),
    [([0.5, 0.5, 0.001, 0.001], True), ([0.5, 0.5, 0.001, 0.3], False), ([0.5, 0.5, 0.3, 0.0], False)],
)
def test_zero_size_boxes_give_no_crop(bbox, square):
    assert crop_box(bbox, 200, 100, square=square) is None


def _gradient(width: int, height: int) -> Image.Image:
    x = np.arange(width)[None, :].repeat(height, 0)
    y = np.arange(height)[:, None].repeat(width, 1)
    return Image.fromarray(np.stack([x % 256, y % 256, np.full_like(x, 200)], -1).astype(np.uint8))


def test_extract_crop_black_beyond_the_right_edge():
    image = _gradient(200, 100)
    crop = np.asarray(extract_crop(image, crop_box([0.9, 0.1, 0.2, 0.5], 200, 100, square=True)))
    assert crop.shape == (50, 50, 3)
    assert (crop[:, 40:] == 0).all()
    assert (crop[:, :40, 0] == np.arange(160, 200)[None, :]).all()
    assert (crop[:, :40, 1] == np.arange(10, 60)[:, None]).all()


def test_extract_crop_pads_full_frame_to_square_with_black():
    image = _gradient(200, 100)
    crop = np.asarray(extract_crop(image, crop_box([0, 0, 1, 1], 200, 100, square=True)))
    assert crop.shape == (200, 200, 3)
    assert (crop[:50] == 0).all() and (crop[150:] == 0).all()
    assert (crop[50:150] == np.asarray(image)).all()


@pytest.mark.parametrize(
    ("bbox", "problem"),
    [
        ([0, 0, 100, 100], "width 100 is larger than the image (more than 1)"),
        ([0, 0, 20, 20], "width 20 is larger than the image (more than 1)"),
        ([0.1, 0.1, 1e9, 1e9], "width 1e+09 is larger than the image (more than 1)"),
        ([0.1, 0.1, 0.5, 1.02], "height 1.02 is larger than the image (more than 1)"),
        ([1.5, 0.1, 0.2, 0.2], "x 1.5 is outside the image (not in [0, 1])"),
        ([0.1, -0.2, 0.2, 0.2], "y -0.2 is outside the image (not in [0, 1])"),
        ([0.1, 0.1, 0, 0.2], "width 0 is not positive"),
        ([0.1, 0.1, 0.2, -0.1], "height -0.1 is not positive"),
        ([0.1, float("nan"), 0.2, 0.2], "bbox [0.1, nan, 0.2, 0.2] has a value that is not a finite number"),
        ([0.1, 0.1, float("inf"), 0.2], "bbox [0.1, 0.1, inf, 0.2] has a value that is not a finite number"),
    ],
)
def test_box_problem_names_what_is_wrong(bbox, problem):
    assert box_problem(bbox) == problem


@pytest.mark.parametrize(
    "bbox",
    [
        [0, 0, 1, 1],
        [0.9, 0.1, 0.2, 0.5],  # the spec's worked example overhangs the right edge: valid, padded black
        [-0.005, 1.005, 1.009, 0.001],  # MegaDetector's rounding, within BOX_TOLERANCE
        [0.5, 0.5, 0.001, 0.001],  # valid, a size-0 crop on a small image
    ],
)
def test_valid_boxes_have_no_problem(bbox):
    assert box_problem(bbox) is None


@pytest.mark.parametrize("square", [False, True])
@pytest.mark.parametrize("bbox", [[0, 0, 100, 100], [0, 0, 20, 20], [0.1, 0.1, 1e9, 1e9], [0, 0, 1.01, 1.01]])
def test_a_crop_is_never_larger_than_the_image(bbox, square):
    box = crop_box(bbox, 200, 100, square=square)
    assert box is not None
    assert box.width <= 200 and box.height <= 100
    assert box.pad_to in ((0, 200) if square else (0,))


def test_crop_box_refuses_non_finite_values():
    with pytest.raises(ValueError, match=r"not a finite number"):
        crop_box([0.1, 0.1, float("inf"), 0.2], 200, 100, square=False)
