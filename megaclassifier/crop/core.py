"""The crop core: the one way ``crop`` and ``run`` cut the boxes of an image.

For one image and its planned crops, :func:`~megaclassifier.crop.cut.cut_image` loads the image once
(:func:`~megaclassifier.images.loading.load_image`: EXIF rotation, RGB, truncated
files, container URLs), cuts each box with the reference geometry
(:mod:`megaclassifier.crop.geometry`), and, as asked by :class:`CutOptions`:

* encodes the crop as RGB JPEG quality 75, the bytes of a ``crop`` file;
* writes them atomically to the crop's planned path (``crop``, ``run --save-crops``);
* hands the crop on to ``convert`` as the chain's later steps see it: decoded
  from those JPEG bytes (``jpeg_roundtrip``) or as cut. A crop cut from an image
  decoded at a JPEG draft reduction is first resized to its full size, so that the
  round trip's noise has the scale of the chain's crop file: on a trained network
  that keeps the chain's top-1 class where a round trip at the reduced size moves it
  (docs/pipeline.md).

So ``run --save-crops`` writes the same bytes as ``crop`` by construction. An
image that cannot be loaded, or a crop that cannot be cut or written, is the
image's recorded failure, never an exception. A video entry goes to
:func:`megaclassifier.crop.video.cut_video`, which decodes the frames that hold
a box and cuts each frame with :func:`cut_source`, the same code. This module holds the
cutting (:func:`cut_source`) and what it works on; :mod:`megaclassifier.crop.cut` the entry,
so that the video module sits between them and imports point down.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

from PIL import Image

from megaclassifier.constants import CROP_JPEG_QUALITY, DEFAULT_TIMEOUT
from megaclassifier.crop.geometry import CropBox, box_for, extract_crop, reduce_box
from megaclassifier.formats.atomic import write_bytes_atomic
from megaclassifier.images.loading import SourceImage

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class PlannedCrop:
    """One box to crop: its detection index, normalised bbox, crop key and file (under ``root``).

    ``frame`` is the detection's ``frame_number`` when the entry is a video, else None.
    """

    index: int
    bbox: tuple[float, float, float, float]
    key: str
    path: Path
    root: Path | None = None
    frame: int | None = None


@dataclass(frozen=True)
class CutOptions:
    """How to find the images and what to do with each crop.

    Attributes:
        images_dir: local root of the images (and where ``save_full_images`` writes).
        container_url: fsspec URL to fetch images not found locally from.
        timeout: seconds a server may take to connect or send more bytes.
        allow_outside_images_dir: read relative ``file`` paths that lead out of ``images_dir``.
        square_crops: square crops, the reference geometry.
        geometry: ``reference`` (:func:`~megaclassifier.crop.geometry.crop_box`), ``speciesnet`` (its
            crop of a box) or ``full_image`` (SpeciesNet's trimmed whole image, the same for every box);
            see :func:`~megaclassifier.crop.geometry.box_for`.
        save_full_images: keep each fetched image under ``images_dir``.
        write_crops: write each crop's JPEG to its planned path.
        jpeg_roundtrip: hand on the crop decoded from its JPEG bytes, as the chain reads crop files.
        min_side: decode a JPEG at the largest draft reduction (1/2, 1/4, 1/8) that leaves every
            box at least this many pixels on its short side (:mod:`megaclassifier.crop.draft`);
            0: at full size. Ignored with ``write_crops`` (crop files are cut at full size).
    """

    images_dir: str | None = None
    container_url: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    allow_outside_images_dir: bool = False
    square_crops: bool = False
    geometry: str = "reference"
    save_full_images: bool = False
    write_crops: bool = False
    jpeg_roundtrip: bool = False
    min_side: int = 0


@dataclass
class CutImage(Generic[T]):
    """What :func:`~megaclassifier.crop.cut.cut_image` did with one image.

    Attributes:
        file: the image's ``file`` entry.
        planned: crops asked for.
        crops: each cut crop with what ``convert`` made of it (None without ``convert``).
        written: crop files written.
        existing: crops already on disk, not cut again (set by ``crop``'s resume).
        size_zero: boxes of size zero, skipped.
        downloaded: the image was fetched from the container URL.
        failure: why the image (or one of its crops) failed, else None.
        warnings: decoding warnings (truncated file, ...).
        gpu_fallback: why ``run``'s GPU decoder left this image to the CPU path, else None.
    """

    file: str
    planned: int = 0
    crops: list[tuple[PlannedCrop, T | None]] = field(default_factory=list)
    written: int = 0
    existing: int = 0
    size_zero: int = 0
    downloaded: bool = False
    failure: str | None = None
    warnings: list[str] = field(default_factory=list)
    gpu_fallback: str | None = None


class _CropWriteError(Exception):
    """Writing a crop file failed (the OSError is its ``__cause__``)."""


def encode_crop(pixels: Image.Image) -> bytes:
    """The bytes of a crop file: RGB JPEG at the reference's quality."""
    buffer = io.BytesIO()
    pixels.save(buffer, format="JPEG", quality=CROP_JPEG_QUALITY)
    return buffer.getvalue()


def jpeg_roundtrip(pixels: Image.Image, data: bytes | None = None) -> Image.Image:
    """The crop as the chain's later steps read its file: decoded from its JPEG bytes (``data``, else encoded now)."""
    return Image.open(io.BytesIO(encode_crop(pixels) if data is None else data)).convert("RGB")


def save_crop(crop: PlannedCrop, data: bytes) -> None:
    """Write a crop file atomically, creating its folders below the crop's root (never through a link)."""
    if crop.root is None:
        crop.path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(crop.path, data, root=crop.root)


def cut_source(
    image: SourceImage,
    crops: Sequence[PlannedCrop],
    options: CutOptions,
    convert: Callable[[Image.Image], T] | None,
    result: CutImage[T],
) -> None:
    """Cut, encode, write and convert the crops of one decoded image (or video frame) into ``result``.

    A crop that cannot be cut or written is ``result``'s failure, and ``result.crops`` is emptied.
    """
    file = result.file
    try:
        converted: dict[CropBox, T | None] = {}  # full_image: one region for all boxes, converted once
        for crop in crops:
            box = box_for(crop.bbox, image.full_width, image.full_height,
                          geometry=options.geometry, square=options.square_crops)  # fmt: skip
            if box is None:
                logger.debug("skipping size-0 crop of detection %d at %s", crop.index, file)
                result.size_zero += 1
                continue
            if box not in converted or options.write_crops:
                pixels = _cut_one(image, box, crop, options, result)
                converted[box] = convert(pixels) if convert is not None else None
            result.crops.append((crop, converted[box]))
    except _CropWriteError as e:
        result.failure = f"cannot write crop: {e.__cause__}"
        result.crops.clear()
    except OSError as e:
        result.failure = f"cannot crop: {e}"
        result.crops.clear()


def full_size(box: CropBox) -> tuple[int, int]:
    """The size of ``box``'s crop at the image's full size: its crop file's size."""
    return (box.pad_to, box.pad_to) if box.pad_to else (box.width, box.height)


def _cut_one(
    image: SourceImage, box: CropBox, crop: PlannedCrop, options: CutOptions, result: CutImage[T]
) -> Image.Image:
    pixels = extract_crop(image, reduce_box(box, image.reduction))
    if not (options.write_crops or options.jpeg_roundtrip):
        return pixels
    if image.reduction > 1:  # the round trip at the crop file's size: its JPEG noise at the chain's scale
        pixels = pixels.resize(full_size(box), Image.Resampling.BICUBIC)
    data = encode_crop(pixels)
    if options.write_crops:
        try:
            save_crop(crop, data)
        except OSError as e:
            raise _CropWriteError from e
        result.written += 1
    return jpeg_roundtrip(pixels, data) if options.jpeg_roundtrip else pixels
