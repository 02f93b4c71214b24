"""Cut the boxes of a video entry: decode only the frames that hold one, streamed, with PyAV.

A video entry of MegaDetector results (:mod:`megaclassifier.formats.videos`)
has one ``frame_number`` per detection, counting frames from 0 in presentation
order as MegaDetector's OpenCV reader does. :func:`cut_video` opens the video
once, walks its frames in order and hands each frame that holds a planned box
to the crop core (:func:`~megaclassifier.crop.core.cut_source`: the same
geometry, JPEG round trip, crop files and conversion as a still image). Frames
are never all held: one decoded frame at a time, and the walk stops after the
last frame asked for.

* Intra-only codecs (MJPEG, ...) are read packet by packet and only the frames
  asked for are decoded: a frame's packet is the frame.
* Other codecs (H.264, HEVC, ...) are decoded in order, since a frame needs
  the ones before it; frames not asked for are not converted to RGB. Where
  the next frame asked for is far ahead (more than :data:`SEEK_GAP` frames)
  and the stream has a constant frame rate, the decoder seeks to the keyframe
  before it and counts frames from their timestamps.

A video that cannot be opened or decoded, that has no frames, or that ends
before a frame asked for is that video's recorded failure (its crops are
dropped, as for an image); the message names the codec when FFmpeg has no
decoder for it. PyAV is the optional extra ``megaclassifier[video]``, imported
only when a video entry is met.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar

from PIL import Image

from megaclassifier.crop.core import CutImage, CutOptions, PlannedCrop, cut_source
from megaclassifier.images.loading import ImageLoadError, SourceImage, container_file_url, local_image_path

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Frames ahead beyond which an inter-coded stream seeks rather than decodes its way there.
SEEK_GAP = 250

MISSING_PYAV = "reading videos needs PyAV: pip install 'megaclassifier[video]'"


class VideoError(Exception):
    """A video could not be opened or decoded; the message is the reason."""


def import_av() -> Any:
    """The ``av`` module (PyAV).

    Raises:
        VideoError: PyAV is not installed (the message says how to install it).
    """
    try:
        import av
    except ImportError:
        raise VideoError(MISSING_PYAV) from None
    return av


def cut_video(
    file: str,
    crops: Sequence[PlannedCrop],
    options: CutOptions,
    convert: Callable[[Image.Image], T] | None = None,
) -> CutImage[T]:
    """Decode the frames of video ``file`` that hold a planned crop and cut each as an image's.

    Args:
        file: the video's ``file`` entry in the results.
        crops: its planned crops, each with its ``frame``.
        options: where the video is and what to do with each crop (as :func:`~megaclassifier.crop.cut.cut_image`).
        convert: applied to each crop.

    Returns:
        The crops cut, and the video's counts and failure; after a failure ``crops`` is empty.
    """
    result: CutImage[T] = CutImage(file, planned=len(crops))
    by_frame: dict[int, list[PlannedCrop]] = defaultdict(list)
    for crop in crops:
        by_frame[crop.frame if crop.frame is not None else -1].append(crop)
    if not by_frame:
        return result  # nothing to classify: the video is not opened
    try:
        if -1 in by_frame:
            raise VideoError(f"detection {by_frame[-1][0].index} has no frame_number")
        with ExitStack() as stack:
            for number, image in decoded_frames(_source(file, options, stack), sorted(by_frame)):
                cut_source(SourceImage(image, None), by_frame[number], options, convert, result)
                if result.failure is not None:
                    return result
    except (VideoError, ImageLoadError) as e:
        result.failure = str(e)
        result.crops.clear()
    return result


def load_frame(file: str, frame: int, *, images_dir: str | Path | None) -> SourceImage:
    """One frame of a local video as an image (``report``'s thumbnails of video boxes).

    Raises:
        ImageLoadError: the video cannot be found, opened or decoded to that frame (the message says why).
    """
    with ExitStack() as stack:
        try:
            source = _source(file, CutOptions(images_dir=str(images_dir) if images_dir else None), stack)
            for _, image in decoded_frames(source, [frame]):
                return SourceImage(image.copy(), None)  # the frame's buffer goes with the container
        except VideoError as e:
            raise ImageLoadError(str(e)) from None
    raise ImageLoadError(f"frame {frame} not decoded")  # decoded_frames raises first; kept for the type checker


def _source(file: str, options: CutOptions, stack: ExitStack) -> Any:
    """What ``av.open`` reads: the local path, else a file object of the container URL."""
    try:
        path = local_image_path(file, options.images_dir, allow_outside_images_dir=options.allow_outside_images_dir)
    except OSError as e:
        raise VideoError(f"cannot look up the video: {e.strerror or e}") from None
    if path is not None:
        return str(path)
    if options.container_url is None:
        where = f"under {options.images_dir}" if options.images_dir is not None else "(no --images-dir given)"
        raise VideoError(f"video not found {where}")
    import fsspec

    url = container_file_url(options.container_url, file)
    try:
        return stack.enter_context(fsspec.open(url, "rb"))
    except (OSError, ValueError) as e:
        raise VideoError(f"cannot open {url}: {e}") from None


def decoded_frames(source: Any, wanted: Sequence[int]) -> Iterator[tuple[int, Image.Image]]:
    """Yield ``(frame number, RGB image)`` for each of ``wanted`` (sorted, distinct), in order.

    Raises:
        VideoError: the video cannot be opened or decoded, has no frames, or ends before a wanted frame.
    """
    av = import_av()
    try:
        container = av.open(source, metadata_errors="ignore")
    except av.error.FFmpegError as e:
        raise VideoError(f"cannot open the video: {_reason(e)}") from None
    except (OSError, ValueError) as e:
        raise VideoError(f"cannot open the video: {e}") from None
    with container:
        stream = _video_stream(container)
        walk = _intra_frames if stream.codec_context.codec.intra_only else _inter_frames
        targets = set(wanted)
        seen, done = -1, 0
        try:
            for number, frame in walk(container, stream, wanted):
                seen = number
                if number in targets and frame is not None:
                    done += 1
                    yield number, frame.to_image()
                if number >= wanted[-1]:
                    break
        except av.error.FFmpegError as e:
            raise VideoError(f"cannot decode frame {seen + 1} ({stream.codec_context.name}): {_reason(e)}") from None
        if done < len(wanted):
            raise VideoError(_ended_early(seen, [n for n in wanted if n > seen] or list(wanted)))


def _video_stream(container: Any) -> Any:
    if not container.streams.video:
        raise VideoError("no video stream in the file")
    stream = container.streams.video[0]
    try:
        context = stream.codec_context
    except Exception:  # noqa: BLE001 - PyAV raises its own types when FFmpeg has no decoder
        context = None
    if context is None:
        tag = getattr(stream, "codec_tag", "") or "unknown"
        raise VideoError(f"this FFmpeg (the one PyAV bundles) has no decoder for the video's codec ({tag})")
    if not context.codec.intra_only:
        stream.thread_type = "AUTO"  # frame threads: packet-by-packet decoding (intra) would lag behind them
    return stream


def _ended_early(seen: int, missing: Sequence[int]) -> str:
    """Why the wanted frames from ``missing[0]`` on never came (``seen``: the last frame that did)."""
    if seen < 0:
        return "the video has no frames that decode (empty, truncated, or a codec this FFmpeg cannot read)"
    more = f" and {len(missing) - 1} later ones" if len(missing) > 1 else ""
    return (
        f"frame {missing[0]}{more} past the end of the video (the last frame read is {seen}; "
        "truncated, or not the video MegaDetector saw?)"
    )


def _reason(error: Any) -> str:
    return str(getattr(error, "strerror", None) or error)


def _intra_frames(container: Any, stream: Any, wanted: Sequence[int]) -> Iterator[tuple[int, Any]]:
    """Every packet is a frame: number the packets, decode only the wanted ones (None for the others)."""
    targets = set(wanted)
    number = -1
    for packet in container.demux(stream):
        if packet.size == 0:
            continue  # the demuxer's end-of-stream flush
        number += 1
        if number not in targets:
            yield number, None
            continue
        decoded = packet.decode()
        yield number, decoded[0] if decoded else None


def _inter_frames(container: Any, stream: Any, wanted: Sequence[int]) -> Iterator[tuple[int, Any]]:
    """Decode in order, numbering the frames; seek to the keyframe before a wanted frame far ahead."""
    clock = _frame_clock(stream)
    frames = container.decode(stream)
    number, resync = -1, False
    for target in wanted:
        if clock is not None and target - number > SEEK_GAP:
            container.seek(clock.pts_of(target), stream=stream, backward=True, any_frame=False)
            frames, resync = container.decode(stream), True
        while number < target:
            frame = next(frames, None)
            if frame is None:
                return
            number = clock.number_of(frame.pts) if resync and clock is not None else number + 1
            resync = False
            yield number, frame


class _FrameClock:
    """Frame number <-> timestamp of a constant-rate stream."""

    def __init__(self, rate: Fraction, time_base: Fraction, start: int) -> None:
        self.per_frame = 1 / (rate * time_base)  # timestamp units per frame
        self.start = start

    def pts_of(self, number: int) -> int:
        return self.start + int(number * self.per_frame)

    def number_of(self, pts: int | None) -> int:
        return round((pts - self.start) / self.per_frame) if pts is not None else 0


def _frame_clock(stream: Any) -> _FrameClock | None:
    """The stream's clock when its frame rate is constant and its timestamps known, else None (no seeking)."""
    rate, guessed, time_base = stream.average_rate, stream.guessed_rate, stream.time_base
    if not rate or not time_base or rate != guessed:
        return None
    return _FrameClock(Fraction(rate), Fraction(time_base), stream.start_time or 0)
