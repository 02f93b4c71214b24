"""Decode only the pixels the boxes need: Pillow's JPEG draft mode for ``run``'s fast path.

libjpeg can decode a JPEG at 1/2, 1/4 or 1/8 of its size in the DCT domain,
several times faster than a full decode. :func:`draft_for` picks, for one
image, the largest of these reductions that still leaves every box of the
image (with ``crop``'s exact geometry, :func:`~megaclassifier.crop.geometry.crop_box`)
at least ``min_side`` pixels on its short side, so that the later resize to
the model input still shrinks (never enlarges) every crop. The crop core then
cuts each box at the reduction (:func:`~megaclassifier.crop.geometry.reduce_box`).
Files that are not JPEG, and images with a box too small, are decoded at full size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from PIL import Image

from megaclassifier.crop.geometry import crop_box
from megaclassifier.images.loading import Draft, exif_rotation

#: The reductions libjpeg decodes at, largest first.
REDUCTIONS = (8, 4, 2)


def draft_for(bboxes: Sequence[tuple[float, float, float, float]], min_side: int, *, square: bool) -> Draft:
    """A :data:`~megaclassifier.images.loading.Draft` hook for an image with these boxes."""

    def draft(image: Image.Image) -> int:
        return apply_draft(image, bboxes, min_side, square=square)

    return draft


def apply_draft(
    image: Image.Image, bboxes: Sequence[tuple[float, float, float, float]], min_side: int, *, square: bool
) -> int:
    """Set the largest JPEG draft that keeps every box ``min_side`` pixels on its short side; return it (1: none)."""
    if image.format != "JPEG" or not bboxes:
        return 1
    reduction = largest_reduction(view_size(image), bboxes, min_side, square=square)
    if reduction == 1:
        return 1
    width, height = image.size
    result = image.draft(image.mode, (math.ceil(width / reduction), math.ceil(height / reduction)))
    if result is None:
        return 1
    _, scaled = result
    return round(width / scaled[2])


def view_size(image: Image.Image) -> tuple[int, int]:
    """(width, height) of an opened image in MegaDetector's view (after its EXIF rotation)."""
    width, height = image.size
    if exif_rotation(image) in (Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_270):
        return height, width
    return width, height


def largest_reduction(
    size: tuple[int, int], bboxes: Sequence[tuple[float, float, float, float]], min_side: int, *, square: bool
) -> int:
    """The largest of :data:`REDUCTIONS` leaving each box's short side at least ``min_side`` (else 1)."""
    sides = []
    for bbox in bboxes:
        box = crop_box(bbox, size[0], size[1], square=square)
        if box is not None:
            sides.append(min(box.width, box.height))
    if not sides:
        return 1
    smallest = min(sides)
    return next((r for r in REDUCTIONS if smallest >= min_side * r), 1)
