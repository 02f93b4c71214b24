"""Classifier preprocessing, exactly as the reference's torchvision transform.

The reference ``run_classifier.py`` applies, to each crop decoded as RGB
(no EXIF rotation)::

    Resize(S, interpolation=BICUBIC)   # shorter side to S, longer side int(S * long / short)
    CenterCrop(S)                      # top = int(round((h - S) / 2)), left likewise
    ToTensor()                         # CHW float32 in [0, 1]: uint8 / 255
    Normalize(IMAGENET_MEAN, IMAGENET_STD)

:func:`preprocess_image` does the same with Pillow and numpy, bit for bit
(a test compares it with torchvision), so torchvision is not needed to run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from megaclassifier.constants import IMAGENET_MEAN, IMAGENET_STD

_MEAN = np.asarray(IMAGENET_MEAN, dtype=np.float32).reshape(3, 1, 1)
_STD = np.asarray(IMAGENET_STD, dtype=np.float32).reshape(3, 1, 1)


def resized_size(width: int, height: int, image_size: int) -> tuple[int, int]:
    """(width, height) after the shorter side is scaled to ``image_size``, as torchvision's Resize."""
    if width <= height:
        return image_size, int(image_size * height / width)
    return int(image_size * width / height), image_size


def resize_and_crop(image: Image.Image, image_size: int) -> np.ndarray:
    """The first half of :func:`preprocess_image`: RGB, resized and centre-cropped, uint8 (S, S, 3).

    Four times smaller than the normalised array, so it is what ``run``'s
    decoding workers hand to the engine; :func:`normalize` finishes the job
    (or the torch engine does, on the GPU, with the same arithmetic).
    """
    if image.mode != "RGB":
        image = image.convert("RGB")
    width, height = image.size
    new_width, new_height = resized_size(width, height, image_size)
    if (new_width, new_height) != (width, height):
        image = image.resize((new_width, new_height), Image.Resampling.BICUBIC)
    top = int(round((new_height - image_size) / 2.0))
    left = int(round((new_width - image_size) / 2.0))
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8)[top : top + image_size, left : left + image_size])


def normalize(pixels: np.ndarray) -> np.ndarray:
    """uint8 (..., S, S, 3) pixels to ImageNet-normalised float32 (..., 3, S, S), as ToTensor + Normalize.

    The arithmetic is torchvision's, in float32: ``x / 255``, then ``- mean``, then ``/ std``.
    """
    chw = np.moveaxis(pixels, -1, -3).astype(np.float32) / np.float32(255.0)
    chw -= _MEAN
    chw /= _STD
    return chw


def preprocess_image(image: Image.Image, image_size: int) -> np.ndarray:
    """Resize, centre-crop and normalise one image as the reference does.

    Args:
        image: any Pillow image; it is converted to RGB.
        image_size: the side S of the output.

    Returns:
        float32 array of shape (3, S, S), ImageNet-normalised.
    """
    return normalize(resize_and_crop(image, image_size))


def load_crop(path: str | Path, image_size: int) -> np.ndarray:
    """Decode a crop file as RGB (as torchvision's default loader) and preprocess it.

    Raises:
        OSError, ValueError, Image.DecompressionBombError: the file is not a readable image.
    """
    with open(path, "rb") as f, Image.open(f) as image:
        return preprocess_image(image.convert("RGB"), image_size)
