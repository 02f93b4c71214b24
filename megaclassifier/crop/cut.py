"""The one entry of the crop core: :func:`cut_image` loads a photo (or, for a video, hands its
frames to :mod:`megaclassifier.crop.video`) and cuts its planned crops with
:func:`~megaclassifier.crop.core.cut_source`. ``crop``, ``run`` and the report's thumbnails
all cut here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PIL import Image

from megaclassifier.crop.core import CutImage, CutOptions, PlannedCrop, T, cut_source
from megaclassifier.crop.draft import draft_for
from megaclassifier.crop.video import cut_video
from megaclassifier.formats.videos import is_video_file
from megaclassifier.images.loading import Draft, ImageLoadError, load_image


def cut_image(
    file: str,
    crops: Sequence[PlannedCrop],
    options: CutOptions,
    convert: Callable[[Image.Image], T] | None = None,
) -> CutImage[T]:
    """Load one image and cut, encode, write and convert its crops as ``options`` say.

    Args:
        file: the image's ``file`` entry in the results.
        crops: its planned crops.
        options: where the image is and what to do with each crop.
        convert: applied to each crop (decoded from its JPEG bytes with ``jpeg_roundtrip``).

    Returns:
        The crops cut, and the image's counts, warnings and failure. After a failure
        ``crops`` is empty; files already written stay (they are complete).
    """
    if is_video_file(file) or any(crop.frame is not None for crop in crops):
        return cut_video(file, crops, options, convert)
    result: CutImage[T] = CutImage(file, planned=len(crops))
    try:
        loaded = load_image(
            file,
            images_dir=options.images_dir,
            container_url=options.container_url,
            save_full_images=options.save_full_images,
            timeout=options.timeout,
            allow_outside_images_dir=options.allow_outside_images_dir,
            draft=_draft(crops, options),
        )
    except ImageLoadError as e:
        result.failure = str(e)
        return result
    result.downloaded, result.warnings = loaded.downloaded, loaded.warnings
    try:
        cut_source(loaded.image, crops, options, convert, result)
    finally:
        loaded.image.close()
    return result


def _draft(crops: Sequence[PlannedCrop], options: CutOptions) -> Draft | None:
    """The JPEG draft hook for ``options.min_side``, or None to decode at full size."""
    if options.min_side <= 0 or options.write_crops or options.geometry != "reference":
        return None  # SpeciesNet's profile resizes from the full-size crop: no draft there
    return draft_for([crop.bbox for crop in crops], options.min_side, square=options.square_crops)
