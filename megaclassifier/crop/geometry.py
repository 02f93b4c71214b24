"""Pixel arithmetic of a crop, exactly as the reference ``crop_detections.py``.

For an image of ``W x H`` pixels and a normalised MegaDetector box
``[x, y, w, h]`` (``int`` truncates toward zero)::

    xmin, ymin = int(x * W), int(y * H)
    bw, bh = int(w * W), int(h * H)          # not int((x + w) * W) - xmin
    plain crop:  (xmin, ymin, xmin + bw, ymin + bh)

    square crop: S = max(bw, bh)
                 xmin' = max(0, min(xmin - int((S - bw) / 2), W - bw))
                 ymin' = max(0, min(ymin - int((S - bh) / 2), H - bh))
                 (xmin', ymin', xmin' + min(W, S), ymin' + min(H, S))

The square clamp uses the box's own size (``W - bw``), not ``S``, so a square
crop near the right or bottom edge reaches past the image; those pixels are
black. When the square crop is still not square (S larger than the image's
other side) it is padded to ``S x S`` with black, centred. A box that is 0
pixels wide or high gives no crop. The classifier was trained on crops of
exactly this geometry, so it is kept.

A box is checked before any image is opened (:func:`box_problem`): each
value finite, ``x`` and ``y`` in ``[0, 1]``, ``w`` and ``h`` in ``(0, 1]``,
each within ``BOX_TOLERANCE`` (0.01). A box that fails is a per-detection
failure. A valid box may still overhang the right or bottom edge (the
reference's worked example ``[0.9, 0.1, 0.2, 0.5]`` does); those pixels are
black. Whatever the box, ``bw`` and ``bh`` never exceed the image, so a crop is
never larger than the image, plus the square padding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageOps

from megaclassifier.constants import BOX_TOLERANCE
from megaclassifier.images.loading import SourceImage


@dataclass(frozen=True)
class CropBox:
    """A crop region in pixels, and the square size to pad to (0: no padding)."""

    left: int
    top: int
    right: int
    bottom: int
    pad_to: int = 0

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top


def box_problem(bbox: Sequence[float], *, tolerance: float = BOX_TOLERANCE) -> str | None:
    """Why a normalised ``[x, y, w, h]`` box cannot be cropped, or None when it can.

    >>> box_problem([0, 0, 100, 100])
    'width 100 is larger than the image (more than 1)'
    """
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in bbox):
        return f"bbox {list(bbox)} has a value that is not a finite number"
    x, y, w, h = bbox
    for name, value in (("x", x), ("y", y)):
        if not -tolerance <= value <= 1 + tolerance:
            return f"{name} {value:g} is outside the image (not in [0, 1])"
    for name, value in (("width", w), ("height", h)):
        if value <= 0:
            return f"{name} {value:g} is not positive"
        if value > 1 + tolerance:
            return f"{name} {value:g} is larger than the image (more than 1)"
    return None


def crop_box(bbox: Sequence[float], width: int, height: int, *, square: bool) -> CropBox | None:
    """Return the pixel region of a normalised box, or None for a zero-size crop.

    Raises:
        ValueError: a value of the box is not finite (see :func:`box_problem`).
    """
    if not all(math.isfinite(v) for v in bbox):
        raise ValueError(f"bbox {list(bbox)} has a value that is not a finite number")
    x, y, w, h = bbox
    xmin, ymin = int(x * width), int(y * height)
    bw, bh = min(int(w * width), width), min(int(h * height), height)  # never larger than the image
    pad_to = 0
    if square:
        side = max(bw, bh)
        xmin = max(0, min(xmin - int((side - bw) / 2), width - bw))
        ymin = max(0, min(ymin - int((side - bh) / 2), height - bh))
        bw, bh = min(width, side), min(height, side)
        if bw != bh:
            pad_to = side
    if bw <= 0 or bh <= 0:
        return None
    return CropBox(xmin, ymin, xmin + bw, ymin + bh, pad_to)


#: SpeciesNet's full-image trim: at most this share of the height, and at most this many pixels, go.
FULL_IMAGE_MAX_TRIM_RATIO = 0.3
FULL_IMAGE_MAX_TRIM_PIXELS = 400


def speciesnet_box(bbox: Sequence[float], width: int, height: int) -> CropBox | None:
    """SpeciesNet's crop of a box: ``int`` of each edge and size, not squared, not clipped; None when empty.

    As its classifier's ``F.crop(image, int(ymin*H), int(xmin*W), int(h*H), int(w*W))``; pixels
    outside the image are black.

    Raises:
        ValueError: a value of the box is not finite.
    """
    if not all(math.isfinite(v) for v in bbox):
        raise ValueError(f"bbox {list(bbox)} has a value that is not a finite number")
    x, y, w, h = bbox
    left, top, bw, bh = int(x * width), int(y * height), int(w * width), int(h * height)
    if bw <= 0 or bh <= 0:
        return None
    return CropBox(left, top, left + bw, top + bh)


def full_image_box(width: int, height: int) -> CropBox:
    """SpeciesNet's full-image crop: the whole width, top and bottom trimmed, centred.

    The kept height is ``max(int(H * 0.7), H - 400)``; the top is torchvision's
    ``center_crop`` offset, ``int(round((H - kept) / 2))``.
    """
    kept = max(int(height * (1.0 - FULL_IMAGE_MAX_TRIM_RATIO)), height - FULL_IMAGE_MAX_TRIM_PIXELS)
    top = int(round((height - kept) / 2.0))
    return CropBox(0, top, width, top + kept)


def box_for(bbox: Sequence[float], width: int, height: int, *, geometry: str, square: bool) -> CropBox | None:
    """The pixel region of a box under ``geometry``: ``reference``, ``speciesnet`` or ``full_image``.

    Raises:
        ValueError: a value of the box is not finite, or an unknown geometry.
    """
    if geometry == "reference":
        return crop_box(bbox, width, height, square=square)
    if geometry == "speciesnet":
        return speciesnet_box(bbox, width, height)
    if geometry == "full_image":
        return full_image_box(width, height)
    raise ValueError(f"unknown crop geometry {geometry!r}")


def extract_crop(image: Image.Image | SourceImage, box: CropBox) -> Image.Image:
    """Cut ``box`` out of an image (RGB result); out-of-image pixels are black."""
    if isinstance(image, SourceImage):
        crop = image.crop(box.left, box.top, box.right, box.bottom)
    else:
        crop = image.crop((box.left, box.top, box.right, box.bottom))
    if box.pad_to:
        crop = ImageOps.pad(crop, (box.pad_to, box.pad_to), method=Image.Resampling.BICUBIC, color=(0, 0, 0))
    return crop


def reduce_box(box: CropBox, reduction: int) -> CropBox:
    """``box`` in the pixels of an image decoded at ``1 / reduction`` of its size (edges rounded)."""
    if reduction == 1:
        return box
    left, top = round(box.left / reduction), round(box.top / reduction)
    right, bottom = max(left + 1, round(box.right / reduction)), max(top + 1, round(box.bottom / reduction))
    return CropBox(left, top, right, bottom, round(box.pad_to / reduction))
