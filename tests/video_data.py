"""Videos made from the real photos of ``../shared/testdata/cameratrap``, and their MegaDetector results.

Each clip shows :data:`PHOTOS` in turn, each photo for :data:`FRAMES_PER_PHOTO`
frames at :data:`FRAME_RATE` frames/s: frames 0-1 are ``blank.jpg``, 2-3
``african_elephants.jpg``, and so on. "MegaDetector" ran on the odd frames
(:data:`FRAMES_PROCESSED`); each processed frame carries the detections of its
photo's still results, with ``frame_number`` added, in format 1.5 as
``process_video`` writes it. So the crop of detection ``d`` of frame ``n`` is the
crop of the same box of the same photo, through the codec's loss.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

#: 2048 x 1536 RGB photos of the cameratrap set, in the clip's order.
PHOTOS = ["blank.jpg", "african_elephants.jpg", "american_black_bear.jpg", "domestic_cattle.jpg", "vehicle.jpg"]
FRAMES_PER_PHOTO = 2
FRAME_RATE = 10
FRAMES_PROCESSED = [n for n in range(len(PHOTOS) * FRAMES_PER_PHOTO) if n % 2 == 1]
CODECS = {"mjpeg": "clip.avi", "libx264": "clip.mp4"}


def photo_of_frame(frame: int) -> str:
    return PHOTOS[frame // FRAMES_PER_PHOTO]


def write_clip(path: Path, images: Path, codec: str, *, photos: list[str] | None = None) -> Path:
    """Encode the photos (each :data:`FRAMES_PER_PHOTO` times) with ``codec``: MJPEG at top quality, or H.264 crf 12."""
    import av

    frames = [Image.open(images / name).convert("RGB") for name in photos or PHOTOS]
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=FRAME_RATE)
        stream.width, stream.height = frames[0].size
        if codec == "mjpeg":
            stream.pix_fmt = "yuvj444p"
            stream.codec_context.qmin = stream.codec_context.qmax = 1  # qscale 1: MJPEG's best
        else:
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": "12", "preset": "veryfast"}
        for image in frames:
            frame = av.VideoFrame.from_ndarray(np.asarray(image), format="rgb24")
            for _ in range(FRAMES_PER_PHOTO):
                out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return path


def video_results(stills: dict[str, Any], video_file: str, *, frames: list[int] | None = None) -> dict[str, Any]:
    """MegaDetector's video results (format 1.5) for a clip of :data:`PHOTOS`, from the photos' still results."""
    by_file = {image["file"]: image for image in stills["images"]}
    detections = []
    processed = FRAMES_PROCESSED if frames is None else frames
    for frame in processed:
        for detection in by_file[photo_of_frame(frame)]["detections"]:
            detections.append({**copy.deepcopy(detection), "frame_number": frame})
    info = {**stills["info"], "format_version": "1.5"}
    video = {
        "file": video_file,
        "frame_rate": float(FRAME_RATE),
        "frames_processed": processed,
        "detections": detections,
    }
    return {"info": info, "detection_categories": stills["detection_categories"], "images": [video]}


def write_json(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")
    return path


def still_index(video: dict[str, Any], index: int) -> tuple[str, int]:
    """(photo, detection index) of the still that detection ``index`` of the video entry copies."""
    detection = video["detections"][index]
    photo = photo_of_frame(detection["frame_number"])
    before = [d for d in video["detections"][:index] if d["frame_number"] == detection["frame_number"]]
    return photo, len(before)
