"""``run --decoder gpu``: decode JPEGs in batches with torchvision (nvjpeg on a GPU), cut and resize there.

Reader threads read each file's bytes and, from its header only, its format,
mode, size and EXIF orientation. Batches of files, bounded by their total
pixels (:data:`MAX_BATCH_PIXELS`), are decoded at once by
``torchvision.io.decode_jpeg(..., device=...)``; each photo is turned to
MegaDetector's view, and each box is cut with ``crop``'s exact geometry
(:func:`~megaclassifier.crop.geometry.crop_box`, black beyond the edges,
square padding centred as Pillow's ``ImageOps.pad``), passed through the crop core's JPEG
round trip on the CPU (unless ``--no-jpeg-roundtrip``), resized (bicubic,
antialiased) and centre-cropped to the model input as
:func:`~megaclassifier.preprocess.resize_and_crop` does, all on the device.
The crops stay there: the torch engine normalises them where they are.

Files the decoder cannot take (not JPEG, CMYK, progressive, truncated, not
local, or a decode error) are cut on the CPU, one by one, by the CPU path,
and counted (:attr:`~megaclassifier.crop.core.CutImage.gpu_fallback`).

The same code runs on ``device="cpu"`` (libjpeg-turbo through torchvision),
which is how the tests compare it with ``--exact``.
"""

from __future__ import annotations

import functools
import io
import re
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PIL import Image, UnidentifiedImageError

from megaclassifier.crop.core import CutImage, PlannedCrop, jpeg_roundtrip
from megaclassifier.crop.geometry import CropBox, crop_box
from megaclassifier.formats.videos import is_video_file
from megaclassifier.images.loading import exif_rotation, local_image_path
from megaclassifier.parallel import bounded_map
from megaclassifier.preprocess import resized_size
from megaclassifier.run.prepare import PrepareOptions, prepare_image

if TYPE_CHECKING:
    import torch

#: At most this many pixels (of whole photos) per decode batch: 256 MP, 768 MiB of RGB.
MAX_BATCH_PIXELS = 256_000_000
#: At most this many files per decode batch.
MAX_BATCH_FILES = 128
#: Files read ahead per reader thread.
READ_AHEAD = 8

_NEXT_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_ROTATIONS = {Image.Transpose.ROTATE_90: 1, Image.Transpose.ROTATE_180: 2, Image.Transpose.ROTATE_270: 3}


@dataclass
class ReadFile:
    """One image's bytes and what its header says; ``cpu_reason`` sends it to the CPU path."""

    file: str
    crops: list[PlannedCrop]
    data: bytes = b""
    pixels: int = 0
    quarter_turns: int = 0
    cpu_reason: str | None = None


def read_file(file: str, crops: list[PlannedCrop], options: PrepareOptions) -> ReadFile:
    """Read a file's bytes and check from its header that the GPU decoder can take it."""
    read = ReadFile(file, crops)
    if is_video_file(file) or any(crop.frame is not None for crop in crops):
        read.cpu_reason = "video"  # frames are decoded by the CPU path (megaclassifier.crop.video)
        return read
    try:
        path = local_image_path(
            file, options.cut.images_dir, allow_outside_images_dir=options.cut.allow_outside_images_dir
        )
        if path is None:
            read.cpu_reason = "not a local file"
            return read
        read.data = path.read_bytes()
        with Image.open(io.BytesIO(read.data)) as image:
            read.cpu_reason = _header_problem(image, read.data)
            read.pixels = image.width * image.height
            read.quarter_turns = _ROTATIONS.get(exif_rotation(image), 0)  # type: ignore[arg-type]
    except (OSError, ValueError, UnidentifiedImageError, Image.DecompressionBombError) as e:
        read.cpu_reason = f"unreadable header ({type(e).__name__})"
    return read


def _header_problem(image: Image.Image, data: bytes) -> str | None:
    """Why nvjpeg should not decode this file, or None."""
    if image.format != "JPEG":
        return f"{image.format or 'unknown'} file"
    if image.mode not in ("RGB", "L"):
        return f"{image.mode} JPEG"
    if image.info.get("progressive") or image.info.get("progression"):
        return "progressive JPEG"
    if not reaches_end_marker(data):
        return "truncated JPEG (no end-of-image marker)"
    return None


def reaches_end_marker(data: bytes) -> bool:
    """Whether a JPEG's segments and scans lead to its end-of-image marker (else it is truncated).

    Walks the marker segments by their lengths (so EXIF thumbnails are skipped) and each
    scan's entropy-coded data to the next marker (a 0xFF not followed by a stuffed 0x00 or
    a restart marker); data after the end marker is ignored, as decoders do.
    """
    pos, end = 2, len(data)
    while pos + 2 <= end:
        if data[pos] != 0xFF:
            return False
        marker = data[pos + 1]
        if marker == 0xD9:
            return True
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if pos + 4 > end:
            return False
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
        if marker == 0xDA:
            found = _NEXT_MARKER.search(data, pos)
            if found is None:
                return False
            pos = found.start()
    return False


def pixel_batches(reads: Iterable[ReadFile], max_pixels: int = MAX_BATCH_PIXELS) -> Iterator[list[ReadFile]]:
    """Group files in order so that each group's photos hold at most ``max_pixels`` (one photo at least)."""
    group: list[ReadFile] = []
    total = 0
    for read in reads:
        if group and (total + read.pixels > max_pixels or len(group) >= MAX_BATCH_FILES):
            yield group
            group, total = [], 0
        group.append(read)
        total += read.pixels
    if group:
        yield group


def decode_batch(reads: Sequence[ReadFile], device: str) -> list[torch.Tensor | None]:
    """Decode the files (RGB, (3, H, W) uint8 on ``device``) in one call; one by one if that fails.

    A file that fails alone gets None and its ``cpu_reason``.
    """
    import torch
    from torchvision.io import ImageReadMode, decode_jpeg

    inputs = [torch.frombuffer(bytearray(r.data), dtype=torch.uint8) for r in reads]
    if not inputs:
        return []
    try:
        return list(decode_jpeg(inputs, mode=ImageReadMode.RGB, device=device))
    except RuntimeError:
        pass
    decoded: list[torch.Tensor | None] = []
    for read, data in zip(reads, inputs, strict=True):
        try:
            decoded.append(decode_jpeg(data, mode=ImageReadMode.RGB, device=device))
        except RuntimeError as e:
            read.cpu_reason = f"decoder error: {str(e).splitlines()[0][:120]}"
            decoded.append(None)
    return decoded


def cut_tensor(image: torch.Tensor, box: CropBox) -> torch.Tensor:
    """Cut ``box`` from a (3, H, W) image as :func:`~megaclassifier.crop.geometry.extract_crop` does."""
    import torch

    height, width = image.shape[1:]
    if (box.left, box.top) >= (0, 0) and box.right <= width and box.bottom <= height and not box.pad_to:
        return image[:, box.top : box.bottom, box.left : box.right]
    side_w, side_h = (box.pad_to, box.pad_to) if box.pad_to else (box.width, box.height)
    out = torch.zeros((3, side_h, side_w), dtype=image.dtype, device=image.device)
    # Pillow's ImageOps.pad pastes the (box-sized) crop centred, rounding half to even
    x0 = round((side_w - box.width) / 2) if box.pad_to else 0
    y0 = round((side_h - box.height) / 2) if box.pad_to else 0
    cl, ct, cr, cb = max(box.left, 0), max(box.top, 0), min(box.right, width), min(box.bottom, height)
    if cl < cr and ct < cb:
        ox, oy = x0 + cl - box.left, y0 + ct - box.top
        out[:, oy : oy + cb - ct, ox : ox + cr - cl] = image[:, ct:cb, cl:cr]
    return out


def resize_and_crop_tensor(crop: torch.Tensor, image_size: int) -> torch.Tensor:
    """(3, h, w) uint8 to the model input, (S, S, 3) uint8: bicubic antialiased resize, centre crop."""
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2.functional import resize

    height, width = crop.shape[1:]
    new_width, new_height = resized_size(width, height, image_size)
    if (new_width, new_height) != (width, height):
        crop = resize(crop, [new_height, new_width], interpolation=InterpolationMode.BICUBIC, antialias=True)
    top = int(round((new_height - image_size) / 2.0))
    left = int(round((new_width - image_size) / 2.0))
    return crop[:, top : top + image_size, left : left + image_size].permute(1, 2, 0).contiguous()


def cut_decoded(read: ReadFile, image: torch.Tensor, options: PrepareOptions) -> CutImage[torch.Tensor]:
    """The crops of one decoded photo, as the CPU path would cut them."""
    import torch

    if read.quarter_turns:
        image = torch.rot90(image, read.quarter_turns, dims=(1, 2))
    result: CutImage[torch.Tensor] = CutImage(read.file, planned=len(read.crops))
    height, width = image.shape[1:]
    for crop in read.crops:
        box = crop_box(crop.bbox, width, height, square=options.cut.square_crops)
        if box is None:
            result.size_zero += 1
            continue
        piece = cut_tensor(image, box)
        if options.cut.jpeg_roundtrip:
            piece = roundtrip_tensor(piece)
        result.crops.append((crop, resize_and_crop_tensor(piece, options.image_size)))
    return result


def roundtrip_tensor(crop: torch.Tensor) -> torch.Tensor:
    """A (3, h, w) uint8 crop through the crop core's JPEG round trip (on the CPU), back on its device."""
    import numpy as np
    import torch

    pixels = Image.fromarray(crop.permute(1, 2, 0).cpu().numpy())
    back = np.asarray(jpeg_roundtrip(pixels))
    return torch.from_numpy(back.copy()).permute(2, 0, 1).to(crop.device)


def _on_cpu(read: ReadFile, options: PrepareOptions) -> CutImage[torch.Tensor]:
    """A file the GPU decoder does not take, cut by the CPU path (its crops as tensors)."""
    import torch

    result = prepare_image(read.file, read.crops, options)
    converted: CutImage[torch.Tensor] = CutImage(
        result.file,
        planned=result.planned,
        crops=[(p, torch.from_numpy(a.copy()) if a is not None else None) for p, a in result.crops],
        size_zero=result.size_zero,
        downloaded=result.downloaded,
        failure=result.failure,
        warnings=result.warnings,
        gpu_fallback=read.cpu_reason,
    )
    return converted


def gpu_stream(
    plans: Iterable[tuple[str, list[PlannedCrop]]],
    options: PrepareOptions,
    device: str,
    *,
    readers: int = 4,
    max_pixels: int = MAX_BATCH_PIXELS,
) -> Iterator[CutImage[torch.Tensor]]:
    """Each image's crops, in order, as (S, S, 3) uint8 tensors on ``device`` (CPU fallbacks on the CPU)."""
    pool = functools.partial(ThreadPoolExecutor, max(1, readers))
    reads = bounded_map(
        read_file, ((file, crops, options) for file, crops in plans), pool=pool, window=max(1, readers) * READ_AHEAD
    )
    for group in pixel_batches(reads, max_pixels):
        decodable = [r for r in group if r.cpu_reason is None]
        images = {id(r): image for r, image in zip(decodable, decode_batch(decodable, device), strict=True)}
        for read in group:
            image = images.get(id(read))
            yield _on_cpu(read, options) if image is None else cut_decoded(read, image, options)
