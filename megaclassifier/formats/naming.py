"""Crop file names: the one home of the naming rule.

A crop of detection ``i`` of image ``file`` is named, as by the reference
``crop_detections.py``::

    {file}___crop{i:02d}_{detector}.jpg      # MegaDetector boxes
    {file}___crop{i:02d}.jpg                 # ground-truth boxes

for example ``sub/IMG_0001.JPG___crop00_md_v5a.0.0.pt.jpg``. The index is the
position of the detection in the JSON list (skipped detections use up their
index) and has at least two digits: ``00`` ... ``99``, ``100``, ...

A box in a video (a detection with a ``frame_number``, see
:mod:`megaclassifier.crop.video`) also names its frame, with at least six digits::

    {file}___frame{N:06d}_crop{i:02d}_{detector}.jpg  # cam1/CLIP0001.MP4___frame000120_crop03_md_v5a.0.0.pt.jpg

That text (the *crop key*, with the JSON's own slashes) is what the
probability CSV's ``path`` column holds and what ``merge`` parses back. On
disk, :func:`crop_path` places it under the crops folder safely: backslashes
become folders, an absolute path or a drive letter is kept as a plain
subfolder, and ``..`` can never climb out of the crops folder.

Names that are not UTF-8 (the byte 0xff of a disk copied from an old Windows or
macOS machine) follow one rule everywhere, Python's own (``os.fsdecode``): each
undecodable byte is a lone surrogate (0xff is ``"\\udcff"``). So:

* results JSON holds it as the escape ``"\\udcff"`` (as MegaDetector's own files do);
* the probability CSV (``classify``, ``run --output-csv``, ``aggregate``) holds the
  name's bytes as the file system has them (:data:`NAME_ERRORS`), read back the same way;
* text meant for people and for strict UTF-8 formats (``export`` CSV and XLSX, the HTML
  report) shows each such byte as ``\\xff`` (:func:`display_name`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

CROP_MARKER = "___crop"

#: The codec error handler for file names in text files: bytes that are not UTF-8 kept as they are.
NAME_ERRORS = "surrogateescape"


def display_name(name: str) -> str:
    r"""``name`` as valid Unicode text: each byte that was not UTF-8 shown as ``\xff``.

    ``display_name("\udcffodd.jpg")`` is ``"\\xffodd.jpg"`` (a backslash, then ``xffodd.jpg``).
    """
    if name.isascii() or not any("\ud800" <= c <= "\udfff" for c in name):
        return name
    try:
        return name.encode("utf-8", NAME_ERRORS).decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that no byte gives ("\ud800" written in a JSON file)
        return name.encode("utf-8", "backslashreplace").decode("utf-8")


def name_bytes(name: str) -> bytes:
    """The bytes of a name as the file system holds them (``os.fsencode`` on POSIX), for hashing."""
    return name.encode("utf-8", NAME_ERRORS)


FRAME_MARKER = "___frame"
_SUFFIX_RE = re.compile(r"^(?P<index>\d+)(?:_(?P<detector>.+))?\.jpg$", re.DOTALL)
_FRAME_SUFFIX_RE = re.compile(r"^(?P<frame>\d+)_crop(?P<index>\d+)(?:_(?P<detector>.+))?\.jpg$", re.DOTALL)
_DRIVE_RE = re.compile(r"^([A-Za-z]):$")


@dataclass(frozen=True)
class CropName:
    """The parts of a crop key (``frame``: the video frame, None for a still image)."""

    file: str
    index: int
    detector: str | None
    frame: int | None = None


def crop_filename(file: str, index: int, detector: str | None, frame: int | None = None) -> str:
    """Return the crop key of detection ``index`` of image ``file``.

    Args:
        file: the image's ``file`` value from the MegaDetector JSON, unchanged.
        index: the detection's position in the image's ``detections`` list.
        detector: the detector name (``info.detector``); None for ground-truth boxes.
        frame: the detection's ``frame_number`` in a video; None for a still image.
    """
    head = f"{file}{CROP_MARKER}" if frame is None else f"{file}{FRAME_MARKER}{frame:06d}_crop"
    if detector is None:
        return f"{head}{index:02d}.jpg"
    return f"{head}{index:02d}_{detector}.jpg"


def parse_crop_filename(key: str) -> CropName:
    """Split a crop key back into image file, detection index and detector.

    Any number of index digits is accepted (the reference misreads 100 and up). A key that
    reads both ways (a still whose ``file`` looks like a video crop) is read by its last marker.

    Raises:
        ValueError: if ``key`` is not a crop name.
    """
    head, marker, tail = key.rpartition(CROP_MARKER)
    match = _SUFFIX_RE.match(tail) if marker and head else None
    video_head, video_marker, video_tail = key.rpartition(FRAME_MARKER)
    video = _FRAME_SUFFIX_RE.match(video_tail) if video_marker and video_head else None
    if video is not None and (match is None or len(video_head) > len(head)):
        return CropName(video_head, int(video["index"]), video["detector"], int(video["frame"]))
    if match is None:
        raise ValueError(f"not a crop file name ({{file}}{CROP_MARKER}NN_<detector>.jpg): {key!r}")
    return CropName(head, int(match["index"]), match["detector"])


def safe_relative_path(file: str) -> PurePosixPath:
    """Map a ``file`` value to a relative path that stays inside its root folder.

    ``\\`` and ``/`` both separate folders; a leading ``/`` is dropped; a drive
    letter ``C:`` becomes a folder ``C``; ``.`` parts are dropped and ``..``
    parts become ``__``. ``file`` values that differ only in these respects can
    share a path, which real MegaDetector files never do.
    """
    parts: list[str] = []
    for i, part in enumerate(file.replace("\\", "/").split("/")):
        if part in ("", "."):
            continue
        if part == "..":
            part = "__"
        elif i == 0 and (drive := _DRIVE_RE.match(part)):
            part = drive.group(1)
        parts.append(part)
    return PurePosixPath(*parts)


def crop_path(crops_dir: str | Path, file: str, index: int, detector: str | None, frame: int | None = None) -> Path:
    """Where the crop of detection ``index`` (of video frame ``frame``) of ``file`` lives under ``crops_dir``."""
    return Path(crops_dir, *safe_relative_path(crop_filename(file, index, detector, frame)).parts)
