"""``run``: MegaDetector results in, classified MegaDetector results out, in one pass.

The same answers as the four-step chain (``crop`` -> ``classify`` ->
``aggregate`` -> ``merge``) without writing and re-reading crop files:

1. worker processes decode each image once, cut all its boxes with the exact
   ``crop`` geometry (EXIF, square crops, threshold), pass each crop through
   the chain's JPEG quality-75 round trip in memory (``--no-jpeg-roundtrip``
   skips it), and resize and centre-crop it as ``classify`` does, handing
   back uint8 pixels (a quarter of the bytes of the normalised array);
2. the main process batches the crops into the engine (ONNX Runtime on the
   CPU, torch on a GPU), which normalises them (on the GPU, after the
   upload); one batch stays in flight while the next is gathered, and the
   workers go on decoding; at most a few images per worker are in flight,
   so memory stays flat;
3. the probabilities pass through the CSV's float32 text form, so
   ``--target-mapping`` sums and ``merge`` rounding see exactly the numbers the
   chain sees, and are merged into the results file.

Failed images are recorded and counted as in ``crop``, in a log file
``run_log_YYYYMMDD_HHMMSS.json`` with the same keys as the crop log.
"""

from __future__ import annotations

import contextlib
import io
import logging
import multiprocessing
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from megaclassifier.constants import CROP_JPEG_QUALITY, DEFAULT_MERGE_THRESHOLD, DEFAULT_TIMEOUT
from megaclassifier.crop.crop import CropSummary, PlannedCrop, plan_crops, resolve_detector, write_crop_log
from megaclassifier.crop.geometry import crop_box, extract_crop
from megaclassifier.crop.images import ImageLoadError, load_image
from megaclassifier.engines.base import pipelined
from megaclassifier.engines.devices import available_cpus
from megaclassifier.formats.atomic import write_bytes_atomic
from megaclassifier.formats.detections import load_detections, write_detections
from megaclassifier.formats.probabilities import ProbabilityCsvWriter, format_float32

logger = logging.getLogger(__name__)


@dataclass
class RunSummary:
    """What a ``run`` did."""

    crop: CropSummary = field(default_factory=CropSummary)
    classified: int = 0
    merged: int = 0
    seconds: float = 0.0
    engine: str = ""
    output_json: Path | None = None
    output_csv: Path | None = None

    @property
    def crops_per_second(self) -> float:
        return self.classified / self.seconds if self.seconds > 0 else 0.0


@dataclass
class _Prepared:
    file: str
    planned: int = 0
    crops: list[tuple[int, str, np.ndarray]] = field(default_factory=list)
    size_zero: int = 0
    downloaded: bool = False
    failure: str | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Options:
    images_dir: str | None
    container_url: str | None
    square_crops: bool
    image_size: int
    jpeg_roundtrip: bool
    save_crops: bool
    timeout: float = DEFAULT_TIMEOUT
    allow_outside_images_dir: bool = False


_worker_options: _Options | None = None


def _init_worker(options: _Options) -> None:
    global _worker_options
    _worker_options = options


def _prepare_in_worker(file: str, crops: list[PlannedCrop]) -> _Prepared:
    assert _worker_options is not None
    return prepare_image(file, crops, _worker_options)


def prepare_image(file: str, crops: Sequence[PlannedCrop], options: _Options) -> _Prepared:
    """Decode one image and return its crops, preprocessed for the classifier."""
    from megaclassifier.classify.preprocess import resize_and_crop

    result = _Prepared(file, planned=len(crops))
    try:
        loaded = load_image(
            file, images_dir=options.images_dir, container_url=options.container_url, timeout=options.timeout,
            allow_outside_images_dir=options.allow_outside_images_dir,
        )
    except ImageLoadError as e:
        result.failure = str(e)
        return result
    result.downloaded = loaded.downloaded
    result.warnings = loaded.warnings
    image = loaded.image
    try:
        for crop in crops:
            box = crop_box(crop.bbox, image.width, image.height, square=options.square_crops)
            if box is None:
                result.size_zero += 1
                continue
            pixels = extract_crop(image, box)
            if options.jpeg_roundtrip or options.save_crops:
                buffer = io.BytesIO()
                pixels.save(buffer, format="JPEG", quality=CROP_JPEG_QUALITY)
                if options.save_crops:
                    write_bytes_atomic(crop.path, buffer.getvalue(), root=crop.root)
                if options.jpeg_roundtrip:
                    buffer.seek(0)
                    pixels = Image.open(buffer).convert("RGB")
            result.crops.append((crop.index, crop.key, resize_and_crop(pixels, options.image_size)))
    except OSError as e:
        result.failure = f"cannot crop: {e}"
        result.crops.clear()
    finally:
        image.close()
    return result


def _prepared_stream(
    plans: list[tuple[str, list[PlannedCrop]]], options: _Options, num_workers: int
) -> Iterator[_Prepared]:
    """Prepare images in order on ``num_workers`` processes (0: here), a bounded number in flight."""
    if num_workers == 0:
        for file, crops in plans:
            yield prepare_image(file, crops, options)
        return
    context = multiprocessing.get_context("spawn")
    window = num_workers * 3
    with ProcessPoolExecutor(num_workers, mp_context=context, initializer=_init_worker, initargs=(options,)) as pool:
        pending: deque[Future[_Prepared]] = deque()
        try:
            for file, crops in plans:
                pending.append(pool.submit(_prepare_in_worker, file, crops))
                if len(pending) >= window:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


def default_run_workers(device: str) -> int:
    """Decoding processes for ``run`` by default.

    On the CPU, one: it overlaps decoding with inference and leaves the cores to
    the model, which sets the pace there. On a GPU decoding sets the pace: one
    process per CPU but one (the main process feeds the GPU), at most 32.
    """
    if device == "cpu":
        return 1
    return max(1, min(32, available_cpus() - 1))


def chain_float64(probabilities: np.ndarray) -> np.ndarray:
    """float32 probabilities as the chain's later steps read them: via their CSV text."""
    flat = np.asarray(probabilities, dtype=np.float32).reshape(-1)
    return np.array(format_float32(flat), dtype=np.float64).reshape(np.shape(probabilities))


def run_pipeline(
    detections_json: str | Path,
    model: str | Path,
    *,
    output_json: str | Path,
    images_dir: str | Path | None = None,
    container_url: str | None = None,
    detector_version: str | None = None,
    threshold: float = 0.0,
    square_crops: bool = False,
    classifier_categories: str | Path | None = None,
    target_mapping: str | Path | None = None,
    output_csv: str | Path | None = None,
    save_crops: str | Path | None = None,
    classifier_name: str | None = None,
    classification_threshold: float = DEFAULT_MERGE_THRESHOLD,
    typical_classification_threshold: float | None = None,
    max_classifications: int | None = None,
    image_size: int | None = None,
    batch_size: int = 32,
    num_workers: int | None = None,
    device: str = "auto",
    precision: str = "fp32",
    backend: str = "auto",
    arch: str | None = None,
    jpeg_roundtrip: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
    allow_outside_images_dir: bool = False,
    logdir: str | Path = ".",
    progress: bool = False,
) -> RunSummary:
    """Crop, classify and merge in one pass.

    Args:
        detections_json: MegaDetector results file.
        model: TorchScript file, EfficientNet checkpoint or downloaded model name.
        output_json: the merged results file (Timelapse-ready).
        images_dir, container_url, detector_version, threshold, square_crops: as ``crop``.
        timeout, allow_outside_images_dir: as ``crop``.
        classifier_categories: the model's index-to-name JSON (default: the downloaded
            model's, else ``0``..``N-1``).
        target_mapping: sum classes into targets (``aggregate``) before merging.
        output_csv: also write the classifier's probability CSV, as ``classify`` would.
        save_crops: also write the crop files, as ``crop`` would.
        classifier_name: ``info.classifier`` (default: the model file's name without suffix).
        classification_threshold, typical_classification_threshold, max_classifications: as ``merge``.
        image_size, batch_size, device, precision, backend, arch: as ``classify``.
        num_workers: image-decoding processes (0: in this process; default: :func:`default_run_workers`).
        jpeg_roundtrip: pass each crop through JPEG quality 75 in memory, as the chain's crop files do.
        logdir: where ``run_log_YYYYMMDD_HHMMSS.json`` goes.
        progress: show a progress bar on stderr.

    Raises:
        InputFileError, ModelError, LabelSpecError, MegaClassifierError: before any image is read.
    """
    from megaclassifier.classify.classify import categories_for, check_class_count
    from megaclassifier.engines import open_engine

    started = time.perf_counter()
    results = load_detections(detections_json)
    detector = resolve_detector(results, detector_version)
    class_names = categories_for(model, classifier_categories)
    groups, merge_names = None, None
    if target_mapping is not None:
        merge_names, groups = _target_groups(target_mapping, class_names, classifier_categories)
    engine = open_engine(model, backend=backend, device=device, precision=precision, arch=arch, image_size=image_size)
    with contextlib.ExitStack() as guard:
        guard.callback(engine.close)
        check_class_count(engine, class_names, classifier_categories)
        guard.pop_all()
    if class_names is None:
        class_names = [str(i) for i in range(engine.num_classes)]
        if target_mapping is not None:
            merge_names, groups = _target_groups(target_mapping, class_names, classifier_categories)
    merge_names = merge_names or class_names
    name = classifier_name or Path(str(model)).name.rsplit(".", 1)[0]
    logger.info("%s", engine.describe())

    summary = RunSummary(engine=engine.describe())
    crop_summary = summary.crop
    crop_summary.images_missing_detections = [
        image["file"] for image in results.images if not isinstance(image.get("detections"), list)
    ]
    plans = list(plan_crops(results, save_crops or ".", threshold=threshold, detector=detector,
                            invalid_boxes=crop_summary.invalid_boxes))
    crop_summary.images = len(plans)
    total = sum(len(crops) for _, crops in plans)
    options = _Options(
        images_dir=str(images_dir) if images_dir is not None else None,
        container_url=container_url,
        square_crops=square_crops,
        image_size=engine.image_size,
        jpeg_roundtrip=jpeg_roundtrip,
        save_crops=save_crops is not None,
        timeout=timeout,
        allow_outside_images_dir=allow_outside_images_dir,
    )
    if num_workers is None:
        num_workers = default_run_workers(engine.device)

    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    from megaclassifier.merge.merge import attach_classifications, classification_list, set_classifier_info

    lists: list[tuple[tuple[str, int], list]] = []
    csv_writer = ProbabilityCsvWriter(output_csv, class_names) if output_csv is not None else None
    bar = tqdm(total=total, unit="crops", desc="run", disable=not progress, dynamic_ncols=True, smoothing=0.1)
    redirect = logging_redirect_tqdm([logging.getLogger("megaclassifier")]) if progress else contextlib.nullcontext()

    def batches() -> Iterator[tuple[list[tuple[str, int, str]], np.ndarray]]:
        """(file, index, crop key) and the stacked uint8 pixels of each batch of crops, as decoded."""
        keys: list[tuple[str, int, str]] = []
        arrays: list[np.ndarray] = []
        for prepared in _prepared_stream(plans, options, num_workers):
            crop_summary.record(prepared)
            for index, key, array in prepared.crops:
                keys.append((prepared.file, index, key))
                arrays.append(array)
                if len(arrays) >= batch_size:
                    yield keys, np.stack(arrays)
                    keys, arrays = [], []
            if prepared.planned != len(prepared.crops):
                bar.total -= prepared.planned - len(prepared.crops)
                bar.refresh()
        if arrays:
            yield keys, np.stack(arrays)

    def finish(batch_keys: list[tuple[str, int, str]], probs: np.ndarray) -> None:
        if csv_writer is not None:
            csv_writer.write_rows([k for _, _, k in batch_keys], probs)
        values = chain_float64(probs)
        if groups is not None:
            from megaclassifier.labels.aggregate import sum_groups

            values = sum_groups(values, groups)
        # only the (short) classification lists are kept, so memory does not grow with the class count
        lists.extend(
            ((file, index), classification_list(row, threshold=classification_threshold,
                                                max_classifications=max_classifications))
            for (file, index, _), row in zip(batch_keys, values, strict=True)
        )
        summary.classified += len(batch_keys)
        bar.update(len(batch_keys))

    with contextlib.ExitStack() as stack:
        stack.enter_context(engine)
        stack.enter_context(bar)
        stack.enter_context(redirect)
        if csv_writer is not None:
            stack.enter_context(csv_writer)
        for batch_keys, probs in pipelined(engine.submit, batches()):  # one batch in flight
            finish(batch_keys, probs)

    counts = attach_classifications(results, lists)
    set_classifier_info(
        results, classifier_name=name, classification_categories={str(i): n for i, n in enumerate(merge_names)},
        typical_classification_threshold=typical_classification_threshold,
    )
    summary.merged = counts.detections_classified
    write_detections(output_json, results.data)
    summary.output_json = Path(output_json)
    summary.output_csv = Path(output_csv) if output_csv is not None else None
    crop_summary.new_crops = summary.classified if save_crops is not None else 0
    crop_summary.log_path = write_crop_log(logdir, crop_summary, prefix="run_log")
    summary.seconds = time.perf_counter() - started
    return summary


def _target_groups(
    target_mapping: str | Path, class_names: list[str] | None, categories_path: str | Path | None
) -> tuple[list[str] | None, list[list[int]] | None]:
    """Load and check a target mapping; return the sorted targets and each target's class positions.

    Without class names yet (they come from the model), returns (None, None); call again once known.
    """
    if class_names is None:
        return None, None
    from megaclassifier.labels.aggregate import check_mapping_covers, load_target_mapping

    mapping = load_target_mapping(target_mapping)
    check_mapping_covers(
        mapping, class_names, mapping_path=target_mapping, csv_path=categories_path or "the model's classes"
    )
    position = {name: i for i, name in enumerate(class_names)}
    targets = sorted(mapping)
    return targets, [[position[label] for label in mapping[t]] for t in targets]

