"""Thumbnails of the report's crops and previews of its images, made by worker processes.

Both are cut by the crop core (:func:`~megaclassifier.crop.cut.cut_image`)
from the full-size image in MegaDetector's view (EXIF rotation applied), then
downscaled:

* a thumbnail of each box is the region ``crop --square-crops`` cuts for it
  (the same pixels, before ``crop``'s JPEG encoding), at most
  :data:`THUMB_SIZE` pixels on its long side;
* a preview is the whole image, at most :data:`PREVIEW_SIZE` on its long side
  (a JPEG may be decoded at a draft reduction that leaves its short side at
  least 3/4 of that: 1024 x 768 of a 4:3 photo).

Files are named by a hash of what they show and of :data:`THUMB_RECIPE`, and
kept, so a second report over the same results makes none again, and a
report by a version that cuts them differently makes them anew::

    OUT_DIR/thumbs/3f/3fa2c1d09e8b7a65.jpg     # recipe, file, detection index, box, size
    OUT_DIR/previews/9c/9c01d2e3f4a5b6c7.jpg   # recipe, file, size
"""

from __future__ import annotations

import functools
import hashlib
import io
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from megaclassifier.crop.core import CutOptions, PlannedCrop
from megaclassifier.crop.cut import cut_image
from megaclassifier.formats.atomic import write_bytes_atomic
from megaclassifier.formats.naming import NAME_ERRORS
from megaclassifier.formats.results_table import DetectionRow
from megaclassifier.parallel import bounded_map

#: Longest side of a crop thumbnail, in pixels.
THUMB_SIZE = 160
#: Longest side of an image preview, in pixels.
PREVIEW_SIZE = 1024
#: Version of the way thumbnails and previews are cut; part of their names, so a change redoes caches.
#: 1: cut from the decoded image (broken: shrunk in place for the preview first); 2: by the crop core.
THUMB_RECIPE = 2
_JPEG_QUALITY = 80
_WHOLE_IMAGE = (0.0, 0.0, 1.0, 1.0)
#: A preview's JPEG may be decoded at a draft reduction leaving its short side this long: a 4:3
#: photo's preview is then made from at least 1024 x 768 pixels (only previews; never thumbnails).
_PREVIEW_MIN_SIDE = PREVIEW_SIZE * 3 // 4


def _digest(*parts: object) -> str:
    return hashlib.sha1("\0".join(map(str, parts)).encode("utf-8", NAME_ERRORS)).hexdigest()[:16]


def thumb_name(row: DetectionRow) -> str:
    """The thumbnail's path relative to the report folder."""
    key = _digest(THUMB_RECIPE, row.file, row.index, row.bbox, THUMB_SIZE, *([] if row.frame is None else [row.frame]))
    return f"thumbs/{key[:2]}/{key}.jpg"


def preview_name(file: str, frame: int | None = None) -> str:
    """The preview's path relative to the report folder (of one frame, for a video's box)."""
    key = _digest(THUMB_RECIPE, file, PREVIEW_SIZE, *([] if frame is None else [frame]))
    return f"previews/{key[:2]}/{key}.jpg"


@dataclass(frozen=True)
class ImageJob:
    """What to make from one image or video frame: its preview (None: it exists) and its boxes' missing thumbnails."""

    file: str
    preview: str | None
    thumbs: tuple[tuple[tuple[float, float, float, float], str], ...]
    frame: int | None = None


def plan_jobs(rows: Sequence[DetectionRow], out_dir: Path) -> tuple[list[ImageJob], int]:
    """Group the missing previews and thumbnails by image.

    Returns:
        The jobs, and how many thumbnails already exist.
    """
    by_file: dict[tuple[str, int | None], list[tuple[tuple[float, float, float, float], str]]] = {}
    for row in rows:
        by_file.setdefault((row.file, row.frame), []).append((row.bbox, thumb_name(row)))
    jobs, cached = [], 0
    for (file, frame), thumbs in by_file.items():
        missing = tuple(t for t in thumbs if not (out_dir / t[1]).is_file())
        cached += len(thumbs) - len(missing)
        preview = preview_name(file, frame)
        preview_missing = not (out_dir / preview).is_file()
        if missing or preview_missing:
            jobs.append(ImageJob(file, preview if preview_missing else None, missing, frame))
    return jobs, cached


def _jpeg(image: Image.Image, size: int) -> bytes:
    """``image`` shrunk (never enlarged) to ``size`` on its long side, as JPEG bytes."""
    image.thumbnail((size, size), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=_JPEG_QUALITY)
    return buffer.getvalue()


def make_image_files(job: ImageJob, out_dir: Path, images_dir: Path) -> tuple[str, int, str | None]:
    """Cut one image's preview and thumbnails with the crop core and write them.

    Returns:
        ``(file, thumbnails written, failure reason or None)``; a box of zero
        pixels gives no thumbnail and no failure.
    """
    root = str(images_dir)
    if job.preview is not None:
        whole = PlannedCrop(-1, _WHOLE_IMAGE, job.preview, out_dir / job.preview, frame=job.frame)
        cut = cut_image(job.file, [whole], CutOptions(images_dir=root, min_side=_PREVIEW_MIN_SIDE),
                        functools.partial(_jpeg, size=PREVIEW_SIZE))  # fmt: skip
        if cut.failure is not None:
            return job.file, 0, cut.failure
        failure = _write(cut.crops)
        if failure is not None:
            return job.file, 0, failure
    if not job.thumbs:
        return job.file, 0, None
    planned = [PlannedCrop(i, bbox, name, out_dir / name, frame=job.frame) for i, (bbox, name) in enumerate(job.thumbs)]
    cut = cut_image(job.file, planned, CutOptions(images_dir=root, square_crops=True, jpeg_roundtrip=True),
                    functools.partial(_jpeg, size=THUMB_SIZE))  # fmt: skip
    if cut.failure is not None:
        return job.file, 0, cut.failure
    failure = _write(cut.crops)
    return job.file, 0 if failure else len(cut.crops), failure


def _write(files: Sequence[tuple[PlannedCrop, bytes | None]]) -> str | None:
    """Write each cut file; the reason of the first that cannot be written, else None."""
    try:
        for planned, data in files:
            if data is not None:
                planned.path.parent.mkdir(parents=True, exist_ok=True)
                write_bytes_atomic(planned.path, data)
    except OSError as e:
        return f"cannot write a thumbnail: {e}"
    return None


def remove_stale_files(out_dir: Path, rows: Sequence[DetectionRow]) -> int:
    """Delete the JPEGs under ``thumbs/`` and ``previews/`` that no row shows (older recipes, other results).

    Returns:
        How many were deleted.
    """
    wanted = {thumb_name(row) for row in rows} | {preview_name(row.file, row.frame) for row in rows}
    removed = 0
    for folder in ("thumbs", "previews"):
        for path in (out_dir / folder).glob("*/*.jpg"):
            if f"{folder}/{path.parent.name}/{path.name}" not in wanted:
                path.unlink(missing_ok=True)
                removed += 1
    return removed


def run_jobs(
    jobs: Sequence[ImageJob], out_dir: Path, images_dir: Path, *, num_workers: int
) -> Iterator[tuple[str, int, str | None]]:
    """Yield :func:`make_image_files` results, made by ``num_workers`` processes (in order)."""
    if not jobs:
        return
    pool = functools.partial(ProcessPoolExecutor, max_workers=num_workers)
    items = ((job, out_dir, images_dir) for job in jobs)
    yield from bounded_map(make_image_files, items, pool=pool, window=num_workers * 4)
