"""``--video-summary``: one answer per video, written as the video entry's ``detections``.

A classified video entry holds the boxes of every frame MegaDetector ran on
(each with its ``frame_number`` and ``classifications``). A summary keeps only
the detections that answer for the whole video, in the entry's ``detections``
list, which is where Timelapse and ``report`` read a file's answer (as
MegaDetector's ``frame_results_to_video_results`` does for its video-level
files). ``frame_rate``, ``frames_processed`` and each kept detection's
``frame_number`` stay, so Timelapse still shows the frame.

* ``best-frame`` (AddaxAI's rule): the frame whose boxes with ``conf`` >= 0.3
  have the highest summed confidence (to 6 decimals, so 0.5 + 0.4 ties 0.9);
  ties go to the larger summed box area, then to the earlier frame. All the detections of that frame are kept. A video
  with no box >= 0.3 keeps the frame of its most confident box (ties as above).
* ``max-per-class`` (MegaDetector's ``frame_results_to_video_results`` with
  ``nth_highest_confidence``): the detections are grouped by class (the top
  classification; a detection without classifications by its detection
  category) and the ``nth``-most confident of each group is kept (ties: the
  higher classification score, then the earlier frame); a group with fewer
  than ``nth`` detections is dropped. Kept detections are listed most
  confident first.

Smoothing over a video's frames needs no rule of its own: ``smooth`` (and
``run --smooth``) treats a video entry as one group, all its frames' boxes
voting together, as a sequence of photos would (a video has no EXIF time, so
``--level sequence`` leaves it a sequence of its own). A summary, when asked
for, comes after smoothing.

Each step is recorded in ``info.classification_postprocessing`` as
``{"step": "video_summary", "rule": ..., "megaclassifier_version": ...}`` (with
``nth_highest_confidence`` for ``max-per-class``); the counts are in the returned
:class:`VideoSummary` and the command's closing line, not in the file, so that
the shards of a ``run --shard`` record the same step and ``combine`` joins them
into the unsharded file.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from megaclassifier import __version__
from megaclassifier.formats.videos import is_video_entry

VIDEO_SUMMARIES = ("best-frame", "max-per-class")

#: AddaxAI's best-frame rule counts boxes with at least this confidence.
BEST_FRAME_MIN_CONF = 0.3

Detection = dict[str, Any]


@dataclass
class VideoSummary:
    """What a video summary did."""

    rule: str
    nth: int = 1
    videos: int = 0
    detections_before: int = 0
    detections_after: int = 0

    def record(self) -> dict[str, Any]:
        """The step's entry in ``info.classification_postprocessing``."""
        out: dict[str, Any] = {"step": "video_summary", "rule": self.rule}
        if self.rule == "max-per-class":
            out["nth_highest_confidence"] = self.nth
        return out | {"megaclassifier_version": __version__}  # no counts: the shards of a run record the same


def _conf(detection: Detection) -> float:
    return float(detection.get("conf", 1.0))


def _area(detection: Detection) -> float:
    bbox = detection.get("bbox") or [0, 0, 0, 0]
    return float(bbox[2]) * float(bbox[3])


def _frame(detection: Detection) -> int:
    return int(detection.get("frame_number", 0))


def _top_score(detection: Detection) -> float:
    classifications = detection.get("classifications") or []
    return float(classifications[0][1]) if classifications else 0.0


def best_frame(detections: list[Detection]) -> int | None:
    """The best frame's number by AddaxAI's rule (module docstring); None without detections."""
    if not detections:
        return None
    frames: dict[int, list[Detection]] = defaultdict(list)
    for detection in detections:
        frames[_frame(detection)].append(detection)

    def strong(frame: int) -> tuple[float, float, int]:
        counted = [d for d in frames[frame] if _conf(d) >= BEST_FRAME_MIN_CONF]
        return round(sum(map(_conf, counted)), 6), round(sum(map(_area, counted)), 9), -frame  # 0.5 + 0.4 ties 0.9

    def strongest_box(frame: int) -> tuple[float, float, int]:
        top = max(frames[frame], key=lambda d: (_conf(d), _area(d)))
        return _conf(top), _area(top), -frame

    key = strong if any(_conf(d) >= BEST_FRAME_MIN_CONF for d in detections) else strongest_box
    return max(frames, key=key)


def best_frame_detections(detections: list[Detection]) -> list[Detection]:
    """The detections of :func:`best_frame`, in their order."""
    frame = best_frame(detections)
    return [d for d in detections if _frame(d) == frame]


def max_per_class(detections: list[Detection], nth: int = 1) -> list[Detection]:
    """The ``nth``-most confident detection of each class (module docstring), most confident first."""
    groups: dict[tuple[str, str], list[Detection]] = defaultdict(list)
    for detection in detections:
        classifications = detection.get("classifications") or []
        key = ("class", str(classifications[0][0])) if classifications else ("category", str(detection["category"]))
        groups[key].append(detection)
    kept = []
    for members in groups.values():
        ranked = sorted(members, key=lambda d: (-_conf(d), -_top_score(d), _frame(d)))
        if len(ranked) >= nth:
            kept.append(ranked[nth - 1])
    return sorted(kept, key=lambda d: (-_conf(d), -_top_score(d), _frame(d)))


def video_summarizer(rule: str, nth: int = 1) -> tuple[Callable[[dict[str, Any]], None], VideoSummary]:
    """A function that summarises one ``images[]`` entry in place (stills pass untouched), and its counts.

    Raises:
        ValueError: an unknown rule or ``nth`` < 1.
    """
    if rule not in VIDEO_SUMMARIES:
        raise ValueError(f"unknown video summary {rule!r} (choose from {', '.join(VIDEO_SUMMARIES)})")
    if nth < 1:
        raise ValueError(f"nth must be at least 1, not {nth}")
    summary = VideoSummary(rule, nth)

    def summarize(image: dict[str, Any]) -> None:
        detections = image.get("detections")
        if not is_video_entry(image) or not isinstance(detections, list):
            return
        kept = best_frame_detections(detections) if rule == "best-frame" else max_per_class(detections, nth)
        summary.videos += 1
        summary.detections_before += len(detections)
        summary.detections_after += len(kept)
        image["detections"] = kept

    return summarize, summary


def summarize_videos(data: dict[str, Any], rule: str, *, nth: int = 1) -> VideoSummary:
    """Summarise every video entry of a loaded results dict in place and record the step in ``info``."""
    summarize, summary = video_summarizer(rule, nth)
    for image in data.get("images") or []:
        summarize(image)
    record_step(data, summary)
    return summary


def record_step(data: dict[str, Any], summary: VideoSummary) -> None:
    """Append the summary's record to ``info.classification_postprocessing``."""
    info = data.get("info")
    if not isinstance(info, dict):
        info = data["info"] = {}
    steps = info.get("classification_postprocessing")
    info["classification_postprocessing"] = [*(steps if isinstance(steps, list) else []), summary.record()]
