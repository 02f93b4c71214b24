"""Video entries of MegaDetector results: which entries are videos, and each box's frame.

MegaDetector's video output (format 1.4 and up; ``process_video``) keeps one
``images[]`` entry per video::

    {"file": "cam1/CLIP0001.MP4", "frame_rate": 30.0, "frames_processed": [0, 10, 20],
     "detections": [{"category": "1", "conf": 0.91, "bbox": [...], "frame_number": 10}]}

``frame_number`` counts the video's frames from 0 in presentation order, as
OpenCV reads them; ``frames_processed`` (1.5+) lists the frames MegaDetector ran
on. An entry is a video when its ``file`` has one of MegaDetector's video
extensions, or when it carries ``frame_rate`` or ``frames_processed``.
"""

from __future__ import annotations

from typing import Any

#: MegaDetector's video extensions (``detection/video_utils.VIDEO_EXTENSIONS``), lower case.
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mpeg", ".mpg", ".mov", ".mkv", ".flv")


def is_video_file(file: str) -> bool:
    """Whether ``file`` has a video extension (any case)."""
    return file.lower().endswith(VIDEO_EXTENSIONS)


def is_video_entry(image: dict[str, Any]) -> bool:
    """Whether an ``images[]`` entry is a video (see the module docstring)."""
    return is_video_file(str(image.get("file", ""))) or "frame_rate" in image or "frames_processed" in image


def frame_problem(detection: dict[str, Any]) -> str | None:
    """Why a video detection's ``frame_number`` cannot be used, or None when it is a whole number >= 0."""
    frame = detection.get("frame_number")
    if frame is None:
        return "no frame_number in a video entry"
    if isinstance(frame, bool) or not isinstance(frame, int) or frame < 0:
        return f"frame_number {frame!r} is not a whole number >= 0"
    return None
