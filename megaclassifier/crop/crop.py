"""``crop``: cut the animal boxes of a MegaDetector results file into JPEG crops.

Crops are written as ``CROPS_DIR/{file}___crop{i:02d}_{detector}.jpg`` (see
:mod:`megaclassifier.formats.naming`), RGB JPEG at quality 75, with the
reference geometry (:mod:`megaclassifier.crop.geometry`). Existing crops are
kept, so an interrupted run resumes. A JSON log is written to ``logdir``::

    crop_detections_log_20261125_143000.json
    {
     "images_missing_detections": ["cam1/broken.jpg"],
     "images_failed_download_or_crop": ["cam1/missing.jpg"],
     "num_new_downloads": 0,
     "num_new_crops": 412,
     "num_existing_crops": 30,
     "num_size_zero_boxes": 0,
     "num_invalid_boxes": 1,
     "failure_reasons": {"cam1/missing.jpg": "image not found under photos"},
     "invalid_boxes": {"cam1/IMG_0001.JPG___crop02_md_v5a.0.0.pt.jpg": "width 100 is larger than the image ..."},
     "warnings": {"cam2/cut.jpg": ["truncated image file ..."]}
    }

The first four keys are the reference's; the others say why and what else.
A box that fails :func:`~megaclassifier.crop.geometry.box_problem` is a
failure of that detection alone: it is listed under ``invalid_boxes`` by its
crop name, and the image's other boxes are cropped. The log's name is created
exclusively: a second run in the same second gets ``..._1.json``.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from megaclassifier.constants import ANIMAL_CATEGORY, DEFAULT_TIMEOUT, UNKNOWN_DETECTOR
from megaclassifier.crop.core import CutImage, CutOptions, PlannedCrop
from megaclassifier.crop.cut import cut_image
from megaclassifier.crop.geometry import box_problem
from megaclassifier.errors import InputFileError, MegaClassifierError, NothingWorkedError
from megaclassifier.formats.atomic import write_json_unique
from megaclassifier.formats.detections import DetectionResults, load_detections
from megaclassifier.formats.naming import crop_filename, crop_path
from megaclassifier.formats.outputs import check_outputs
from megaclassifier.formats.videos import frame_problem, is_video_entry
from megaclassifier.parallel import bounded_map

logger = logging.getLogger(__name__)


@dataclass
class CropSummary:
    """What a ``crop`` run did."""

    images: int = 0
    new_crops: int = 0
    existing_crops: int = 0
    size_zero: int = 0
    new_downloads: int = 0
    images_missing_detections: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    invalid_boxes: dict[str, str] = field(default_factory=dict)
    warnings: dict[str, list[str]] = field(default_factory=dict)
    gpu_fallbacks: dict[str, str] = field(default_factory=dict)
    log_path: Path | None = None
    #: the images with at least one box to crop (above the threshold): the ones with work to do
    with_work: set[str] = field(default_factory=set)

    def plan(self, plans: list[tuple[str, list[Any]]]) -> None:
        """Count the planned images, and note those with a box to crop."""
        self.images = len(plans)
        self.with_work = {file for file, crops in plans if crops}

    @property
    def failed_images(self) -> int:
        return len(self.failures)

    @property
    def images_with_boxes(self) -> int:
        """Planned images with at least one box to crop."""
        return len(self.with_work)

    @property
    def images_without_boxes(self) -> int:
        """Planned images with no box to crop (blank, or no box above the threshold): never opened."""
        return self.images - len(self.with_work)

    def record(self, image: CutImage[Any]) -> None:
        """Count one image's crops, size-0 boxes, download, failure and warnings (logged as they come)."""
        self.new_crops += image.written
        self.existing_crops += image.existing
        self.size_zero += image.size_zero
        self.new_downloads += int(image.downloaded)
        if image.gpu_fallback is not None:
            self.gpu_fallbacks[image.file] = image.gpu_fallback
        if image.failure is not None:
            self.failures[image.file] = image.failure
            logger.warning("%s: %s", image.file, image.failure)
        if image.warnings:
            self.warnings[image.file] = image.warnings
            for warning in image.warnings:
                logger.warning("%s: %s", image.file, warning)

    def raise_if_all_failed(self, consequence: str) -> None:
        """Every image with work to do (a box to crop) failed: nothing worked, which is not a success.

        Images without a box above the threshold (blank ones) have nothing to fail, so they do
        not count: a set of blank photos and unreadable ones with boxes exits 3. A set with no
        box at all to crop is a success (exit 0) with nothing done.

        Raises:
            NothingWorkedError: naming the count, the first failure, ``consequence`` and the log.
        """
        failed = [file for file in self.failures if file in self.with_work]
        if not self.with_work or len(failed) < len(self.with_work):
            return
        which = "images" if len(self.with_work) == self.images else "images with a box to crop"
        raise NothingWorkedError(
            f"all {len(failed)} {which} failed (first: {failed[0]}: {self.failures[failed[0]]}); "
            f"{consequence}; see {self.log_path}"
        )


def resolve_detector(results: DetectionResults, detector_version: str | None) -> str:
    """The detector name used in crop names: ``info.detector``, else ``--detector-version``, else ``unknown``.

    Raises:
        InputFileError: both are given and differ.
    """
    detector = results.detector
    if detector is not None and detector_version is not None and detector != detector_version:
        raise InputFileError(
            results.path,
            f'info.detector is "{detector}" but --detector-version is "{detector_version}"; '
            "drop --detector-version or make them agree",
        )
    return detector or detector_version or UNKNOWN_DETECTOR


def is_croppable(detection: dict[str, Any], category_name: str | None, threshold: float) -> bool:
    """The reference rule: animal boxes whose ``conf`` (when present) is >= threshold."""
    if category_name != ANIMAL_CATEGORY:
        return False
    return "conf" not in detection or detection["conf"] >= threshold


def plan_crops(
    results: DetectionResults,
    crops_dir: str | Path,
    *,
    threshold: float,
    detector: str,
    invalid_boxes: dict[str, str] | None = None,
    select: Callable[[list[dict[str, Any]]], Collection[int]] | None = None,
) -> Iterator[tuple[str, list[PlannedCrop]]]:
    """Yield ``(file, crops)`` for each image with a detections list, in sorted file order.

    The boxes cut are the animal boxes at or above ``threshold`` (:func:`is_croppable`), or, with
    ``select``, the boxes of any category whose indices ``select(detections)`` gives (SpeciesNet's
    ensemble: :func:`megaclassifier.postprocess.ensemble.select_boxes`).

    A later duplicate ``file`` replaces an earlier one. Detections whose
    category is not in ``detection_categories`` are skipped with a warning.
    A croppable box that fails :func:`box_problem` (or, in a video entry, has no usable
    ``frame_number``) is left out, logged, and recorded in ``invalid_boxes`` (crop key to
    reason) when given. A video's crops carry their frame (:mod:`megaclassifier.formats.videos`).
    """
    categories = results.detection_categories
    by_file: dict[str, dict[str, Any]] = {}
    for image in results.successful_images():
        by_file[image["file"]] = image
    for file in sorted(by_file):
        image = by_file[file]
        name_detector = None if image.get("is_ground_truth") is True else detector
        video = is_video_entry(image)
        crops = []
        chosen = select(image["detections"]) if select is not None else None
        for index, det in enumerate(image["detections"]):
            category = str(det["category"])
            name = categories.get(category)
            if name is None:
                logger.warning("ignoring detection with category %s for image %s", category, file)
                continue
            if is_croppable(det, name, threshold) if chosen is None else index in chosen:
                frame, frame_issue = _frame_of(det, video)
                key = crop_filename(file, index, name_detector, frame)
                problem = box_problem(det["bbox"]) or frame_issue
                if problem is not None:
                    logger.warning("%s: detection %d not cropped: %s", file, index, problem)
                    if invalid_boxes is not None:
                        invalid_boxes[key] = problem
                    continue
                path = crop_path(crops_dir, file, index, name_detector, frame)
                crops.append(PlannedCrop(index, tuple(det["bbox"]), key, path, Path(crops_dir), frame))
        yield file, crops


def _frame_of(detection: dict[str, Any], video: bool) -> tuple[int | None, str | None]:
    """A video detection's frame number, or why it has none usable; (None, None) for a still image."""
    if not video:
        return None, None
    problem = frame_problem(detection)
    return (None, problem) if problem is not None else (detection["frame_number"], None)


def crop_exists(path: Path, *, check_valid: bool) -> bool:
    """Whether a crop file is there (and, with ``check_valid``, decodes).

    False when it cannot be looked at, and for a symbolic link (it is replaced
    by a real crop, never followed).
    """
    try:
        return not path.is_symlink() and path.exists() and (not check_valid or _crop_is_valid(path))
    except OSError:  # a name too long, say: writing it will fail and be recorded
        return False


def _crop_is_valid(path: Path) -> bool:
    try:
        with Image.open(path) as im:
            im.load()
        return True
    except Exception:  # noqa: BLE001 - any failure means "regenerate"
        return False


def _crop_one_image(
    file: str, crops: list[PlannedCrop], options: CutOptions, check_crops_valid: bool
) -> CutImage[None]:
    """Cut the crops of one image that are not on disk yet (resume)."""
    todo = [c for c in crops if not crop_exists(c.path, check_valid=check_crops_valid)]
    if not todo:
        return CutImage(file, planned=len(crops), existing=len(crops))  # the image is not opened at all
    result: CutImage[None] = cut_image(file, todo, options)
    result.planned, result.existing = len(crops), len(crops) - len(todo)
    return result


def crop_detections(
    detections_json: str | Path,
    crops_dir: str | Path,
    *,
    images_dir: str | Path | None = None,
    container_url: str | None = None,
    detector_version: str | None = None,
    save_full_images: bool = False,
    square_crops: bool = False,
    check_crops_valid: bool = False,
    threshold: float = 0.0,
    threads: int = 1,
    timeout: float = DEFAULT_TIMEOUT,
    allow_outside_images_dir: bool = False,
    logdir: str | Path = ".",
    progress: bool = False,
) -> CropSummary:
    """Crop every animal box with ``conf >= threshold`` of a MegaDetector results file.

    Args:
        detections_json: MegaDetector results file.
        crops_dir: root folder of the crops; subfolders of ``file`` are kept.
        images_dir: local root of the images (and where ``save_full_images`` writes).
        container_url: fsspec URL to fetch images not found locally from.
        detector_version: detector name when the JSON has no ``info.detector``.
        save_full_images: keep each fetched image under ``images_dir``.
        square_crops: square crops, the reference geometry.
        check_crops_valid: re-open existing crops and regenerate broken ones.
        threshold: minimum detection confidence (inclusive).
        threads: decoding threads; each image is decoded once for all its boxes.
        timeout: seconds a server may take to connect or to send more bytes;
            transient errors are retried a few times, then the image fails.
        allow_outside_images_dir: read relative ``file`` paths that lead out of
            ``images_dir`` (``../x.jpg``); by default they are refused failures.
        logdir: where ``crop_detections_log_YYYYMMDD_HHMMSS.json`` is written.
        progress: show a progress bar on stderr.

    Raises:
        InputFileError: the detections file is unusable; nothing is written.
        MegaClassifierError: ``save_full_images`` without ``images_dir``.
    """
    if save_full_images and images_dir is None:
        raise MegaClassifierError("--save-full-images needs --images-dir: that is where fetched images are saved")
    results = load_detections(detections_json)
    detector = resolve_detector(results, detector_version)
    check_outputs(folders=[logdir, crops_dir])
    summary = CropSummary()
    summary.images_missing_detections = results.files_missing_detections()
    plans = list(
        plan_crops(results, crops_dir, threshold=threshold, detector=detector, invalid_boxes=summary.invalid_boxes)
    )
    summary.plan(plans)
    if images_dir is not None and save_full_images:
        Path(images_dir).mkdir(parents=True, exist_ok=True)

    from tqdm import tqdm

    bar = tqdm(total=len(plans), unit="img", disable=not progress, desc="crop", dynamic_ncols=True)
    options = CutOptions(
        images_dir=str(images_dir) if images_dir is not None else None,
        container_url=container_url,
        square_crops=square_crops,
        save_full_images=save_full_images,
        write_crops=True,
        timeout=timeout,
        allow_outside_images_dir=allow_outside_images_dir,
    )
    task = functools.partial(_crop_one_image, options=options, check_crops_valid=check_crops_valid)
    pool = functools.partial(ThreadPoolExecutor, max_workers=threads, thread_name_prefix="crop")
    try:
        for result in bounded_map(task, plans, pool=pool if threads > 1 else None, window=threads * 2):
            summary.record(result)
            bar.update(1)
            bar.set_postfix(crops=summary.new_crops, failed=len(summary.failures), refresh=False)
    finally:
        bar.close()
        summary.log_path = write_crop_log(logdir, summary)
    summary.raise_if_all_failed("no crop written")
    return summary


def write_crop_log(
    logdir: str | Path,
    summary: CropSummary,
    *,
    prefix: str = "crop_detections_log",
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write the JSON log of a run as a new ``{prefix}_YYYYMMDD_HHMMSS.json``: the reference's keys, then ``extra``.

    When that name exists (two runs in one second), ``..._1.json`` and so on.
    """
    stamp = time.strftime("%Y%m%d_%H%M%S")
    log = {
        "images_missing_detections": summary.images_missing_detections,
        "images_failed_download_or_crop": sorted(summary.failures),
        "num_new_downloads": summary.new_downloads,
        "num_new_crops": summary.new_crops,
        "num_existing_crops": summary.existing_crops,
        "num_size_zero_boxes": summary.size_zero,
        "num_invalid_boxes": len(summary.invalid_boxes),
        "failure_reasons": dict(sorted(summary.failures.items())),
        "invalid_boxes": dict(sorted(summary.invalid_boxes.items())),
        "warnings": dict(sorted(summary.warnings.items())),
        **(extra or {}),
    }
    return write_json_unique(logdir, f"{prefix}_{stamp}", log, indent=1)
