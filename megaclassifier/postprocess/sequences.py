"""Which images form a sequence: from a COCO Camera Traps file, or from the images' EXIF times.

A COCO Camera Traps file names each image's sequence (MegaDetector's
sequence-level smoothing reads the same)::

    {"images": [{"file_name": "cam1/IMG_0001.JPG", "seq_id": "cam1-s1"},
                {"file_name": "cam1/IMG_0002.JPG", "seq_id": "cam1-s1"}]}

Without one, sequences are built: an image's camera is its folder (or the
first ``camera_depth`` folder levels of its path), its time the EXIF
``DateTimeOriginal`` read from the file header (no pixels are decoded), and a
camera's images sorted by time split into a new sequence wherever two follow
more than ``gap_seconds`` apart. An image without a readable time stays alone.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from megaclassifier.errors import InputFileError
from megaclassifier.formats.reading import read_json
from megaclassifier.images import exif

logger = logging.getLogger(__name__)


@dataclass
class Sequences:
    """Each image's sequence and position in it.

    Attributes:
        of: image file -> (sequence number, position in the sequence).
        count: how many sequences.
        without_time: images that stayed alone for want of a timestamp (built sequences).
        not_in_file: results images the sequence file does not list (left as they are).
        missing_from_results: images the sequence file lists that the results lack.
        source: ``"cct"`` or ``"exif"``.
    """

    of: dict[str, tuple[int, int]] = field(default_factory=dict)
    count: int = 0
    without_time: int = 0
    not_in_file: int = 0
    missing_from_results: int = 0
    source: str = "exif"


def normalise(file: str) -> str:
    """``\\`` as ``/``, so that Windows and POSIX paths match."""
    return file.replace("\\", "/")


def sequences_from_cct(path: str | Path, files: Iterable[str], *, results: str) -> Sequences:
    """Read sequences from a COCO Camera Traps file.

    Args:
        path: the CCT JSON (``images`` with ``file_name`` and ``seq_id``).
        files: the results' image files, in order.
        results: the results file's name, for messages.

    Raises:
        InputFileError: not a CCT file, or none of its images is in the results.
    """
    data = read_json(path)
    images = data.get("images") if isinstance(data, dict) else None
    if not isinstance(images, list):
        raise InputFileError(path, 'no "images" list; is this a COCO Camera Traps file?')
    members: dict[str, list[str]] = {}
    for i, image in enumerate(images):
        if not isinstance(image, dict) or not isinstance(image.get("file_name"), str) or "seq_id" not in image:
            raise InputFileError(path, f'images[{i}] needs "file_name" and "seq_id"')
        members.setdefault(str(image["seq_id"]), []).append(normalise(image["file_name"]))
    present = {normalise(f) for f in files}
    out = Sequences(source="cct", count=len(members))
    for number, names in enumerate(members.values()):
        for position, name in enumerate(names):
            if name not in present:
                out.missing_from_results += 1
            else:
                out.of.setdefault(name, (number, position))
    if images and not out.of:
        example = normalise(images[0]["file_name"])
        raise InputFileError(
            path,
            f"none of its {len(images)} images is in {results} (e.g. {example!r}); "
            "file_name must match the results' file paths",
        )
    out.not_in_file = len(present - out.of.keys())
    return out


def camera_of(file: str, depth: int | None) -> str:
    """The camera an image belongs to: its folder, or the first ``depth`` folder levels."""
    folders = normalise(file).split("/")[:-1]
    return "/".join(folders if depth is None else folders[:depth])


def parse_exif_time(value: object) -> dt.datetime | None:
    """``"2023:06:01 14:03:59"`` -> datetime; None for anything else (see :mod:`megaclassifier.images.exif`)."""
    local = exif.parse_exif_time(value)
    return dt.datetime.fromisoformat(local) if local is not None else None


def sequences_from_times(
    times: dict[str, dt.datetime | None], *, camera_depth: int | None, gap_seconds: float
) -> Sequences:
    """Split each camera's images into sequences at gaps longer than ``gap_seconds``.

    Args:
        times: image file -> its time (None: unknown), in results order.
        camera_depth: folder levels that name a camera (None: the whole folder).
        gap_seconds: the longest gap within a sequence.
    """
    out = Sequences(source="exif")
    by_camera: dict[str, list[tuple[dt.datetime, str]]] = {}
    for file, time in times.items():
        if time is None:
            out.of[file] = (out.count, 0)
            out.count += 1
            out.without_time += 1
        else:
            by_camera.setdefault(camera_of(file, camera_depth), []).append((time, file))
    for shots in by_camera.values():
        shots.sort()
        previous: dt.datetime | None = None
        position = 0
        for time, file in shots:
            if previous is None or (time - previous).total_seconds() > gap_seconds:
                out.count += 1
                position = 0
            out.of[file] = (out.count - 1, position)
            position += 1
            previous = time
    return out


def sequences_from_exif(
    files: Iterable[str], images_dir: Path, *, camera_depth: int | None, gap_seconds: float
) -> Sequences:
    """Build sequences from the images' EXIF times (files relative to ``images_dir``)."""
    names = [normalise(f) for f in files]
    found = exif.capture_times(names, Path(images_dir))
    times = {name: dt.datetime.fromisoformat(t.local) if t is not None else None for name, t in found.items()}
    out = sequences_from_times(times, camera_depth=camera_depth, gap_seconds=gap_seconds)
    if out.without_time:
        logger.info("%d of %d images have no EXIF time; each stays alone", out.without_time, len(times))
    return out
