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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageOps

from megaclassifier.crop.images import SourceImage


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


def crop_box(bbox: Sequence[float], width: int, height: int, *, square: bool) -> CropBox | None:
    """Return the pixel region of a normalised box, or None for a zero-size crop."""
    x, y, w, h = bbox
    xmin, ymin = int(x * width), int(y * height)
    bw, bh = int(w * width), int(h * height)
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


def extract_crop(image: Image.Image | SourceImage, box: CropBox) -> Image.Image:
    """Cut ``box`` out of an image (RGB result); out-of-image pixels are black."""
    if isinstance(image, SourceImage):
        crop = image.crop(box.left, box.top, box.right, box.bottom)
    else:
        crop = image.crop((box.left, box.top, box.right, box.bottom))
    if box.pad_to:
        crop = ImageOps.pad(crop, (box.pad_to, box.pad_to), method=Image.Resampling.BICUBIC, color=(0, 0, 0))
    return crop
