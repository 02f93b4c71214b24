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
     "failure_reasons": {"cam1/missing.jpg": "image not found under photos"},
     "warnings": {"cam2/cut.jpg": ["truncated image file ..."]}
    }

The first four keys are the reference's; the others say why and what else.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from megaclassifier.constants import ANIMAL_CATEGORY, UNKNOWN_DETECTOR
from megaclassifier.crop.core import CutImage, CutOptions, PlannedCrop, cut_image
from megaclassifier.errors import InputFileError, MegaClassifierError
from megaclassifier.formats.atomic import write_json_atomic
from megaclassifier.formats.detections import DetectionResults, load_detections
from megaclassifier.formats.naming import crop_filename, crop_path
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
    warnings: dict[str, list[str]] = field(default_factory=dict)
    log_path: Path | None = None

    @property
    def failed_images(self) -> int:
        return len(self.failures)

    def record(self, image: CutImage[Any]) -> None:
        """Count one image's crops, size-0 boxes, download, failure and warnings (logged as they come)."""
        self.new_crops += image.written
        self.existing_crops += image.existing
        self.size_zero += image.size_zero
        self.new_downloads += int(image.downloaded)
        if image.failure is not None:
            self.failures[image.file] = image.failure
            logger.warning("%s: %s", image.file, image.failure)
        if image.warnings:
            self.warnings[image.file] = image.warnings
            for warning in image.warnings:
                logger.warning("%s: %s", image.file, warning)


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
    results: DetectionResults, crops_dir: str | Path, *, threshold: float, detector: str
) -> Iterator[tuple[str, list[PlannedCrop]]]:
    """Yield ``(file, crops)`` for each image with a detections list, in sorted file order.

    A later duplicate ``file`` replaces an earlier one. Detections whose
    category is not in ``detection_categories`` are skipped with a warning.
    """
    categories = results.detection_categories
    by_file: dict[str, dict[str, Any]] = {}
    for image in results.successful_images():
        by_file[image["file"]] = image
    for file in sorted(by_file):
        image = by_file[file]
        name_detector = None if image.get("is_ground_truth") is True else detector
        crops = []
        for index, det in enumerate(image["detections"]):
            category = str(det["category"])
            name = categories.get(category)
            if name is None:
                logger.warning("ignoring detection with category %s for image %s", category, file)
                continue
            if is_croppable(det, name, threshold):
                key = crop_filename(file, index, name_detector)
                path = crop_path(crops_dir, file, index, name_detector)
                crops.append(PlannedCrop(index, tuple(det["bbox"]), key, path))
        yield file, crops


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
    todo = [c for c in crops if not (c.path.exists() and (not check_crops_valid or _crop_is_valid(c.path)))]
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
    summary = CropSummary()
    summary.images_missing_detections = results.files_missing_detections()
    plans = list(plan_crops(results, crops_dir, threshold=threshold, detector=detector))
    summary.images = len(plans)
    if images_dir is not None and save_full_images:
        Path(images_dir).mkdir(parents=True, exist_ok=True)

    from tqdm import tqdm

    bar = tqdm(total=len(plans), unit="img", disable=not progress, desc="crop", dynamic_ncols=True)
    options = CutOptions(
        images_dir=str(images_dir) if images_dir is not None else None, container_url=container_url,
        square_crops=square_crops, save_full_images=save_full_images, write_crops=True,
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
    return summary


def write_crop_log(logdir: str | Path, summary: CropSummary, *, prefix: str = "crop_detections_log") -> Path:
    """Write the JSON log of a run (the reference's keys first) as ``{prefix}_YYYYMMDD_HHMMSS.json``."""
    stamp = time.strftime("%Y%m%d_%H%M%S")
    path = Path(logdir, f"{prefix}_{stamp}.json")
    log = {
        "images_missing_detections": summary.images_missing_detections,
        "images_failed_download_or_crop": sorted(summary.failures),
        "num_new_downloads": summary.new_downloads,
        "num_new_crops": summary.new_crops,
        "num_existing_crops": summary.existing_crops,
        "num_size_zero_boxes": summary.size_zero,
        "failure_reasons": dict(sorted(summary.failures.items())),
        "warnings": dict(sorted(summary.warnings.items())),
    }
    os.makedirs(path.parent, exist_ok=True)
    write_json_atomic(path, log, indent=1)
    return path
