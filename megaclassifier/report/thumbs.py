"""Thumbnails of the report's crops and previews of its images, made by worker processes.

Each image is decoded once (EXIF orientation applied, as for ``crop``) and
gives a preview of the whole image (at most :data:`PREVIEW_SIZE` pixels on
its long side) and a thumbnail (at most :data:`THUMB_SIZE`) of each of its
boxes, cut with the square geometry of ``crop --square-crops``. Files are
named by a hash of what they show and kept, so a second report over the same
results makes none again::

    OUT_DIR/thumbs/3f/3fa2c1d09e8b7a65.jpg     # file, detection index, box, size
    OUT_DIR/previews/9c/9c01d2e3f4a5b6c7.jpg   # file, size
"""

from __future__ import annotations

import functools
import hashlib
import io
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from megaclassifier.crop.geometry import crop_box, extract_crop
from megaclassifier.crop.images import ImageLoadError, SourceImage, load_image
from megaclassifier.formats.atomic import write_bytes_atomic
from megaclassifier.formats.results_table import DetectionRow
from megaclassifier.parallel import bounded_map

#: Longest side of a crop thumbnail, in pixels.
THUMB_SIZE = 160
#: Longest side of an image preview, in pixels.
PREVIEW_SIZE = 1024
_JPEG_QUALITY = 80


def _digest(*parts: object) -> str:
    return hashlib.sha1("\0".join(map(str, parts)).encode("utf-8")).hexdigest()[:16]


def thumb_name(row: DetectionRow) -> str:
    """The thumbnail's path relative to the report folder."""
    key = _digest(row.file, row.index, row.bbox, THUMB_SIZE, *([] if row.frame is None else [row.frame]))
    return f"thumbs/{key[:2]}/{key}.jpg"


def preview_name(file: str, frame: int | None = None) -> str:
    """The preview's path relative to the report folder (of one frame, for a video's box)."""
    key = _digest(file, PREVIEW_SIZE, *([] if frame is None else [frame]))
    return f"previews/{key[:2]}/{key}.jpg"


@dataclass(frozen=True)
class ImageJob:
    """What to make from one image or video frame: its preview and its boxes' thumbnails (paths under the report)."""

    file: str
    preview: str
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
        if missing or not (out_dir / preview).is_file():
            jobs.append(ImageJob(file, preview, missing, frame))
    return jobs, cached


def make_image_files(job: ImageJob, out_dir: Path, images_dir: Path) -> tuple[str, int, str | None]:
    """Decode one image and write its preview and thumbnails.

    Returns:
        ``(file, thumbnails written, failure reason or None)``; a box of zero
        pixels gives no thumbnail and no failure.
    """
    try:
        image = _load(job, images_dir)
    except ImageLoadError as e:
        return job.file, 0, str(e)
    try:
        written = 0
        for bbox, name in job.thumbs:
            box = crop_box(bbox, image.width, image.height, square=True)
            if box is None:
                continue
            crop = extract_crop(image, box)
            crop.thumbnail((THUMB_SIZE, THUMB_SIZE))
            _save(crop, out_dir / name)
            written += 1
        preview = image.view()  # last: it may be the decoded image itself, which thumbnail() shrinks in place
        preview.thumbnail((PREVIEW_SIZE, PREVIEW_SIZE))
        _save(preview, out_dir / job.preview)
        return job.file, written, None
    except OSError as e:
        return job.file, 0, f"cannot write a thumbnail: {e}"
    finally:
        image.close()


def _load(job: ImageJob, images_dir: Path) -> SourceImage:
    """The job's image, or its video frame (:mod:`megaclassifier.crop.video`)."""
    if job.frame is None:
        return load_image(job.file, images_dir=images_dir).image
    from megaclassifier.crop.video import load_frame

    return load_frame(job.file, job.frame, images_dir=images_dir)


def _save(image: object, path: Path) -> None:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=_JPEG_QUALITY)  # type: ignore[attr-defined]
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, buffer.getvalue())


def run_jobs(
    jobs: Sequence[ImageJob], out_dir: Path, images_dir: Path, *, num_workers: int
) -> Iterator[tuple[str, int, str | None]]:
    """Yield :func:`make_image_files` results, made by ``num_workers`` processes (in order)."""
    if not jobs:
        return
    pool = functools.partial(ProcessPoolExecutor, max_workers=num_workers)
    items = ((job, out_dir, images_dir) for job in jobs)
    yield from bounded_map(make_image_files, items, pool=pool, window=num_workers * 4)
