"""When each image was taken, from its EXIF ``DateTimeOriginal`` (the header only; no pixels decoded).

``export`` (capture times, Camtrap DP) and ``smooth --level sequence`` (sequences
from the images) both read them here.

``DateTimeOriginal`` (tag 36867, in the Exif IFD) is read, else the main
IFD's ``DateTime`` (306); ``OffsetTimeOriginal`` (36881) gives its UTC offset
when the camera wrote one::

    capture_time(Path("photos/cam1/IMG_0001.JPG"))
    # CaptureTime(local="2010-08-04T08:43:15", offset=None)
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from megaclassifier.errors import first_line
from megaclassifier.images.loading import ImageLoadError, local_image_path

logger = logging.getLogger(__name__)

_EXIF_IFD = 0x8769
_DATETIME_ORIGINAL = 36867
_OFFSET_TIME_ORIGINAL = 36881
_DATETIME = 306
_EXIF_TIME_RE = re.compile(r"^\s*(\d{4}):(\d{2}):(\d{2})[ T](\d{2}):(\d{2}):(\d{2})")
_OFFSET_RE = re.compile(r"^[+-]\d{2}:\d{2}$")


@dataclass(frozen=True)
class CaptureTime:
    """A capture time as the camera wrote it.

    Attributes:
        local: ``YYYY-MM-DDThh:mm:ss``, the camera's clock.
        offset: ``+hh:mm`` / ``-hh:mm`` from ``OffsetTimeOriginal``, or None.
    """

    local: str
    offset: str | None = None


def parse_exif_time(text: object) -> str | None:
    """``"2010:08:04 08:43:15"`` -> ``"2010-08-04T08:43:15"``; None for anything else (``0000:00:00 ...``)."""
    match = _EXIF_TIME_RE.match(str(text)) if isinstance(text, (str, bytes)) else None
    if match is None or match[1] == "0000":
        return None
    y, mo, d, h, mi, s = match.groups()
    return f"{y}-{mo}-{d}T{h}:{mi}:{s}"


def capture_time(path: Path) -> CaptureTime | None:
    """The capture time of the image at ``path``, or None (no EXIF time, or unreadable)."""
    try:
        return read_capture_time(path)
    except ImageLoadError:
        return None


def read_capture_time(path: Path) -> CaptureTime | None:
    """The capture time of the image at ``path``, or None when it has no EXIF time.

    Raises:
        ImageLoadError: the file cannot or must not be read: missing, not an image, a header
            whose size trips Pillow's decompression-bomb guard, an EXIF block Pillow chokes on.
    """
    try:
        with Image.open(path) as image:
            exif = image.getexif()
            sub = exif.get_ifd(_EXIF_IFD)
    except UnidentifiedImageError:
        raise ImageLoadError("not an image file (or an unsupported format)") from None
    except OSError as e:
        raise ImageLoadError(f"{e.strerror or first_line(e)}") from None
    except Exception as e:  # noqa: BLE001 - DecompressionBombError, and whatever a broken EXIF block raises
        raise ImageLoadError(f"cannot read: {first_line(e)}") from None
    local = parse_exif_time(sub.get(_DATETIME_ORIGINAL)) or parse_exif_time(exif.get(_DATETIME))
    if local is None:
        return None
    offset = str(sub.get(_OFFSET_TIME_ORIGINAL) or "").strip()
    return CaptureTime(local, offset if _OFFSET_RE.match(offset) else None)


def capture_times(files: Iterable[str], images_dir: Path, *, threads: int = 8) -> dict[str, CaptureTime | None]:
    """``file`` -> capture time (None when not found or without one), read by ``threads`` threads.

    An image that cannot be read (a decompression bomb, a broken file) gets None and a warning
    naming it; the others are read.
    """

    def one(file: str) -> CaptureTime | None:
        try:
            path = local_image_path(file, images_dir)
        except (ImageLoadError, OSError):  # refused (outside images_dir) or unreadable: no time
            return None
        if path is None:
            return None
        try:
            return read_capture_time(path)
        except ImageLoadError as e:  # this image's failure: said once, the others go on
            logger.warning("%s: unreadable image, no capture time (%s)", file, e)
            return None

    files = list(files)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return dict(zip(files, pool.map(one, files), strict=True))
