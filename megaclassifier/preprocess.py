"""Classifier preprocessing, exactly as the reference's torchvision transform.

The reference ``run_classifier.py`` applies, to each crop decoded as RGB
(no EXIF rotation)::

    Resize(S, interpolation=BICUBIC)   # shorter side to S, longer side int(S * long / short)
    CenterCrop(S)                      # top = int(round((h - S) / 2)), left likewise
    ToTensor()                         # CHW float32 in [0, 1]: uint8 / 255
    Normalize(IMAGENET_MEAN, IMAGENET_STD)

:func:`preprocess_image` does the same with Pillow and numpy, bit for bit
(a test compares it with torchvision), so torchvision is not needed to run.

A model may need other preprocessing: a :class:`Preprocessing` profile says
which. :data:`REFERENCE` is the one above; a SpeciesNet release brings its own
(:data:`megaclassifier.models.speciesnet.SPECIESNET_PREPROCESSING`): boxes
cut as SpeciesNet cuts them, each crop stretched to S x S (bilinear, no
antialiasing, as torchvision's ``resize`` of a float tensor), then uint8,
then ``/ 255`` as NHWC float32. :func:`to_pixels` and :func:`model_input`
are the two halves for any profile.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from megaclassifier.constants import IMAGENET_MEAN, IMAGENET_STD


@dataclass(frozen=True)
class Preprocessing:
    """How a model wants its crops: geometry, resizing and the input tensor.

    Attributes:
        name: ``megaclassifier`` (the reference) or ``speciesnet``.
        image_size: the side S fixed by the model, or None (``--image-size``, the architecture's size).
        crop_geometry: ``reference`` (:func:`~megaclassifier.crop.geometry.crop_box`, ``--square-crops``),
            ``speciesnet`` (``int`` of each box edge, not squared) or ``full_image``
            (the whole image, top and bottom trimmed).
        stretch: resize the crop to S x S ignoring its aspect (SpeciesNet), instead of
            shorter side to S and a centre crop (the reference).
        channels_last: the model takes NHWC input in [0, 1] (SpeciesNet), instead of
            ImageNet-normalised NCHW (the reference).
    """

    name: str = "megaclassifier"
    image_size: int | None = None
    crop_geometry: str = "reference"
    stretch: bool = False
    channels_last: bool = False


#: The reference's preprocessing (MegaClassifier, the IDFG classifier, any TorchScript or checkpoint file).
REFERENCE = Preprocessing()

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


def stretch_to_square(image: Image.Image, image_size: int) -> np.ndarray:
    """SpeciesNet's resize: RGB crop to uint8 (S, S, 3), aspect not kept.

    As ``convert_image_dtype(resize(to_float(crop), [S, S], antialias=False), uint8)``
    in torchvision: bilinear interpolation of the float pixels (``uint8 / 255``),
    then ``int(x * 255.999)``.
    """
    import torch
    import torch.nn.functional as functional

    if image.mode != "RGB":
        image = image.convert("RGB")
    pixels = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1)
    x = pixels.to(torch.float32).div(255.0).unsqueeze(0)
    if x.shape[-2:] != (image_size, image_size):
        x = functional.interpolate(x, size=[image_size, image_size], mode="bilinear", align_corners=False)
    out = x[0].mul(255.0 + 1.0 - 1e-3).to(torch.uint8)
    return np.ascontiguousarray(out.permute(1, 2, 0).numpy())


def to_pixels(image: Image.Image, image_size: int, profile: Preprocessing = REFERENCE) -> np.ndarray:
    """A cut crop as the model's uint8 (S, S, 3) pixels, as ``profile`` resizes it."""
    if profile.stretch:
        return stretch_to_square(image, image_size)
    return resize_and_crop(image, image_size)


def model_input(pixels: np.ndarray, profile: Preprocessing = REFERENCE) -> np.ndarray:
    """uint8 (N, S, S, 3) pixels as the model's float32 input.

    The reference: ImageNet-normalised (N, 3, S, S) (:func:`normalize`). SpeciesNet:
    (N, S, S, 3) in [0, 1], ``pixels / 255.0`` computed in float64 then cast, as its
    ``batch_predict`` does.
    """
    if profile.channels_last:
        return (np.asarray(pixels, dtype=np.uint8) / 255.0).astype(np.float32)
    return normalize(pixels)


def input_shape(profile: Preprocessing, batch: int, image_size: int) -> tuple[int, int, int, int]:
    """The model's input shape for a batch under ``profile``."""
    if profile.channels_last:
        return (batch, image_size, image_size, 3)
    return (batch, 3, image_size, image_size)


def load_crop_file(path: str | Path, image_size: int, profile: Preprocessing) -> np.ndarray:
    """Decode a crop file as RGB and make the model's input of one crop (see :func:`model_input`).

    Raises:
        OSError, ValueError, Image.DecompressionBombError: the file is not a readable image.
    """
    if not profile.stretch and not profile.channels_last:
        return load_crop(path, image_size)
    with open(path, "rb") as f, Image.open(f) as image:
        return model_input(to_pixels(image.convert("RGB"), image_size, profile)[None], profile)[0]
