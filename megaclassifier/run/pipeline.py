"""``run``: MegaDetector results in, classified MegaDetector results out, in one pass.

The same answers as the four-step chain (``crop`` -> ``classify`` ->
``aggregate`` -> ``merge``) without writing and re-reading crop files:

1. worker processes decode each image once and cut its boxes with the crop
   core, as ``crop`` does (:mod:`megaclassifier.run.prepare`);
2. the main process batches the crops into the engine (ONNX Runtime on the
   CPU, torch on a GPU), which normalises them (on the GPU, after the
   upload); one batch stays in flight while the next is gathered;
3. each batch's probabilities become ``classifications`` lists exactly as the
   chain's ``aggregate`` and ``merge`` make them
   (:mod:`megaclassifier.run.classifier`), and stream into the merge
   (:func:`megaclassifier.merge.merge_rows`, which ``merge`` uses too).

Failed images are recorded and counted as in ``crop``, in a log file
``run_log_YYYYMMDD_HHMMSS.json`` with the same keys as the crop log.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from megaclassifier.constants import DEFAULT_BATCH_SIZE, DEFAULT_MERGE_THRESHOLD, DEFAULT_TIMEOUT
from megaclassifier.crop.core import CutImage, CutOptions, PlannedCrop
from megaclassifier.crop.crop import CropSummary, plan_crops, resolve_detector, write_crop_log
from megaclassifier.engines import Engine, pipelined
from megaclassifier.errors import MegaClassifierError
from megaclassifier.formats.atomic import check_outputs
from megaclassifier.formats.detections import DetectionResults, load_detections, write_detections
from megaclassifier.formats.probabilities import ProbabilityCsvWriter
from megaclassifier.labels.descriptions import Taxon, load_taxonomy_file
from megaclassifier.merge import Classifications, CropRef, merge_rows
from megaclassifier.preprocess import REFERENCE, Preprocessing
from megaclassifier.run.classifier import Classifier, open_classifier
from megaclassifier.run.decoders import BatchStacker, decode_device, decoded_stream, resolve_decoder
from megaclassifier.run.prepare import PrepareOptions, default_run_workers
from megaclassifier.run.resume import RowWriter, crop_keys, open_run_resume
from megaclassifier.run.shards import Shard, ShardSelection, record_shard, take_shard

if TYPE_CHECKING:
    from megaclassifier.smooth import PostprocessSummary
    from megaclassifier.smooth.options import SmoothOptions
    from megaclassifier.smooth.videos import VideoSummary

logger = logging.getLogger(__name__)

#: One batch of crops: (file, detection index, crop key) of each, and their stacked uint8 pixels.
Batch = tuple[list[tuple[str, int, str]], np.ndarray]


@dataclass
class RunSummary:
    """What a ``run`` did."""

    crop: CropSummary = field(default_factory=CropSummary)
    classified: int = 0
    merged: int = 0
    seconds: float = 0.0
    engine: str = ""
    geofenced: int | None = None
    decoder: str = ""
    output_json: Path | None = None
    output_csv: Path | None = None
    postprocessed: PostprocessSummary | None = None
    videos: VideoSummary | None = None

    @property
    def crops_per_second(self) -> float:
        return self.classified / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class RunOptions:
    """What ``run`` does besides reading its two inputs; one field per command-line option.

    Attributes:
        output_json: the merged results file (Timelapse-ready).
        images_dir, container_url, detector_version, threshold, square_crops, timeout,
            allow_outside_images_dir: as ``crop``.
        classifier_categories, target_mapping, classifier_name: see
            :func:`~megaclassifier.run.classifier.open_classifier`.
        output_csv: also write the classifier's probability CSV, as ``classify`` would.
        save_crops: also write the crop files, as ``crop`` would.
        classification_threshold, typical_classification_threshold, max_classifications: as ``merge``.
        image_size, batch_size, device, precision, backend, arch: as ``classify``.
        num_workers: image-decoding processes (0: in this process; default: :func:`default_run_workers`).
        jpeg_roundtrip: pass each crop through JPEG quality 75 in memory, as the chain's crop files do
            (None: with ``exact`` only).
        exact: today's bit-for-bit chain behaviour: full-size Pillow decoding and the JPEG round trip.
            Without it JPEGs are decoded at a draft reduction (:mod:`megaclassifier.crop.draft`).
        decoder: ``auto``, ``cpu``, ``gpu`` or ``hybrid`` (:mod:`megaclassifier.run.decoders`).
        taxonomy: class name -> taxonomy CSV: write ``classification_category_descriptions`` (as ``merge``),
            and the taxonomy that smoothing and roll-up use. A SpeciesNet release writes its own labels
            there without it.
        country, admin1_region: apply a SpeciesNet release's geofence for this ISO 3166-1 alpha-3 country
            (and first-level region), as its ensemble does (:mod:`megaclassifier.smooth.geofence`).
        smooth: smooth the merged results before writing them, as ``smooth`` does.
        video_summary, video_summary_nth: then keep one answer per video entry
            (:mod:`megaclassifier.smooth.videos`: ``best-frame`` or ``max-per-class``).
        logdir: where ``run_log_YYYYMMDD_HHMMSS.json`` goes.
        shard: classify only this shard's images (:mod:`megaclassifier.run.shards`); ``combine`` joins them.
        restart: ignore the resume journal (``OUTPUT_JSON.journal``) of an interrupted run
            (see :mod:`megaclassifier.run.resume`).
    """

    output_json: str | Path
    images_dir: str | Path | None = None
    container_url: str | None = None
    detector_version: str | None = None
    threshold: float = 0.0
    square_crops: bool = False
    timeout: float = DEFAULT_TIMEOUT
    allow_outside_images_dir: bool = False
    classifier_categories: str | Path | None = None
    target_mapping: str | Path | None = None
    classifier_name: str | None = None
    output_csv: str | Path | None = None
    save_crops: str | Path | None = None
    classification_threshold: float = DEFAULT_MERGE_THRESHOLD
    typical_classification_threshold: float | None = None
    max_classifications: int | None = None
    image_size: int | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    num_workers: int | None = None
    device: str = "auto"
    precision: str = "fp32"
    backend: str = "auto"
    arch: str | None = None
    jpeg_roundtrip: bool | None = None
    exact: bool = False
    decoder: str = "auto"
    taxonomy: str | Path | None = None
    country: str | None = None
    admin1_region: str | None = None
    smooth: SmoothOptions | None = None
    video_summary: str | None = None
    video_summary_nth: int = 1
    logdir: str | Path = "."
    shard: Shard | None = None
    restart: bool = False

    def cut_options(self, profile: Preprocessing = REFERENCE, image_size: int = 0) -> CutOptions:
        """How the crop core finds the images and treats each crop, for a model with ``profile``.

        The fast path decodes JPEGs at a draft reduction that keeps every box at least ``image_size``
        (not with ``exact``). A SpeciesNet profile cuts its own geometry at full size, never squared,
        with no JPEG round trip.
        """
        reference = profile.crop_geometry == "reference"
        return CutOptions(
            images_dir=str(self.images_dir) if self.images_dir is not None else None,
            container_url=self.container_url,
            timeout=self.timeout,
            allow_outside_images_dir=self.allow_outside_images_dir,
            square_crops=self.square_crops and reference,
            geometry=profile.crop_geometry,
            write_crops=self.save_crops is not None,
            jpeg_roundtrip=(self.exact if self.jpeg_roundtrip is None else self.jpeg_roundtrip) and reference,
            min_side=0 if self.exact or not reference else image_size,
        )


def run_pipeline(
    detections_json: str | Path, model: str | Path, options: RunOptions, *, progress: bool = False
) -> RunSummary:
    """Crop, classify and merge (and smooth) in one pass.

    Args:
        detections_json: MegaDetector results file.
        model: TorchScript file, EfficientNet checkpoint or downloaded model name.
        options: everything else (:class:`RunOptions`).
        progress: show a progress bar on stderr.

    Raises:
        InputFileError, ModelError, LabelSpecError, MegaClassifierError: before any image is read.
    """
    started = time.perf_counter()
    results = load_detections(detections_json)
    check_outputs([options.output_json, options.output_csv], [options.logdir, options.save_crops])
    selection = take_shard(results, options.shard)
    detector = resolve_detector(results, options.detector_version)
    class_taxa = load_taxonomy_file(options.taxonomy) if options.taxonomy is not None else None
    classifier = _open_classifier(model, options)
    fence = load_fence(classifier, options)
    summary = RunSummary(engine=classifier.engine.describe())
    plans = plan_images(results, summary.crop, options, detector)
    with contextlib.ExitStack() as stack:
        stack.enter_context(classifier.engine)
        resume = open_run_resume(detections_json, classifier, options, summary)
        stack.enter_context(resume.journal)
        todo = resume.pending(plans)
        images = resume.watch(_decoded(todo, options, classifier.engine, summary))
        bar = stack.enter_context(progress_bar(sum(len(crops) for _, crops in todo), progress))
        csv = resume.csv(stack.enter_context(csv_writer(options, classifier)))
        batches = _batches(images, options.batch_size, summary.crop, bar, decode_device(*_where(classifier)))
        rows = resume.rows(classified_rows(batches, classifier, summary, options, bar=bar, csv=csv), crop_keys(todo))
        summary.merged = merge_classified(results, rows, classifier, options, class_taxa)
        write_run_log(summary, options)  # before the CSV is committed: when every image failed, nothing is
    _postprocess(results, classifier, fence, summary, options, record=(selection, detections_json, model))
    finish_run(summary, results, options, started)
    resume.journal.finish()
    return summary


def merge_classified(
    results: DetectionResults,
    rows: Iterable[tuple[CropRef, Classifications]],
    classifier: Classifier,
    options: RunOptions,
    class_taxa: dict[str, Taxon] | None,
) -> int:
    """Merge the classified rows as they come (:func:`~megaclassifier.merge.merge_rows`); return how many."""
    return merge_rows(
        results,
        rows,
        classifier_name=classifier.name,
        classification_categories=classifier.categories,
        typical_classification_threshold=options.typical_classification_threshold,
        class_taxa=class_taxa,
    ).detections_classified


def _postprocess(
    results: DetectionResults,
    classifier: Classifier,
    fence: Fence | None,
    summary: RunSummary,
    options: RunOptions,
    *,
    record: tuple[ShardSelection | None, str | Path, str | Path],
) -> None:
    """After the merge: SpeciesNet's descriptions and geofence, smoothing, the shard's record."""
    summary.geofenced = speciesnet_steps(results, classifier, fence, taxonomy=options.taxonomy)
    summary.postprocessed = postprocess(results, options.smooth, taxonomy=options.taxonomy)
    summary.videos = summarize_videos(results, options)
    selection, detections_json, model = record
    record_shard(results, selection, detections_json=detections_json, model=model, options=options)


@dataclass(frozen=True)
class Fence:
    """``--country``'s geofence: a SpeciesNet release's rules and taxonomy, and where."""

    geofence: dict[str, dict[str, Any]]
    taxonomy_map: dict[str, str]
    country: str
    admin1_region: str | None


def load_fence(classifier: Classifier, options: RunOptions) -> Fence | None:
    """The release's geofence for ``--country``, read before any image is; None without ``--country``.

    Raises:
        MegaClassifierError: ``--country`` without a SpeciesNet release, or with a target mapping.
        ModelError: the release's taxonomy or geofence file is unusable.
    """
    if options.country is None:
        return None
    release = classifier.release
    if release is None or classifier.descriptions is None:
        raise MegaClassifierError(
            "--country applies a SpeciesNet release's geofence: give a SpeciesNet release folder as MODEL"
            + (" (and no --target-mapping)" if release is not None else "")
        )
    from megaclassifier.models.speciesnet import read_geofence, read_taxonomy_map

    region = options.admin1_region.upper() if options.admin1_region else None
    return Fence(read_geofence(release.geofence), read_taxonomy_map(release.taxonomy), options.country.upper(), region)


def speciesnet_steps(
    results: DetectionResults, classifier: Classifier, fence: Fence | None, *, taxonomy: str | Path | None
) -> int | None:
    """A SpeciesNet release's labels as the class descriptions (unless ``--taxonomy``), then the geofence.

    Returns:
        Detections the geofence moved, or None without one.
    """
    descriptions = classifier.descriptions
    if descriptions is not None and taxonomy is None:
        results.data["classification_category_descriptions"] = descriptions
    if fence is None:
        return None
    from megaclassifier.smooth.api import geofence_results

    return geofence_results(
        results.data,
        geofence=fence.geofence,
        taxonomy_map=fence.taxonomy_map,
        country=fence.country,
        admin1_region=fence.admin1_region,
        source=str(results.path),
    ).detections_changed


def _open_classifier(model: str | Path, options: RunOptions) -> Classifier:
    return open_classifier(
        model,
        classifier_categories=options.classifier_categories,
        target_mapping=options.target_mapping,
        classifier_name=options.classifier_name,
        image_size=options.image_size,
        device=options.device,
        precision=options.precision,
        backend=options.backend,
        arch=options.arch,
    )


def _decoded(
    plans: list[tuple[str, list[PlannedCrop]]], options: RunOptions, engine: Engine, summary: RunSummary
) -> Iterator[CutImage[Any]]:
    """The images' crops as model inputs, from the decoder ``options`` ask for."""
    workers = default_run_workers(engine.device) if options.num_workers is None else options.num_workers
    profile = engine.preprocessing
    decoder = options.decoder
    if profile.crop_geometry != "reference":  # SpeciesNet's resize is its own: the CPU path does it
        if decoder in ("gpu", "hybrid"):
            raise MegaClassifierError(f"--decoder {decoder} does not apply to {engine.model_path}: use cpu or auto")
        decoder = "cpu"
    summary.decoder = resolve_decoder(decoder, exact=options.exact, backend=engine.backend, device=engine.device)
    prepare = prepare_options(options, engine)
    return decoded_stream(
        plans, prepare, summary.decoder, device=decode_device(engine.backend, engine.device), workers=workers
    )


def prepare_options(options: RunOptions, engine: Engine) -> PrepareOptions:
    """What the CPU decoding side does for this engine: cut as its profile says, resize to its input."""
    profile = engine.preprocessing
    return PrepareOptions(options.cut_options(profile, engine.image_size), engine.image_size, profile)


def csv_writer(
    options: RunOptions, classifier: Classifier
) -> contextlib.AbstractContextManager[ProbabilityCsvWriter | None]:
    """The probability CSV's writer with ``--output-csv``, else nothing."""
    if options.output_csv is None:
        return contextlib.nullcontext()
    return ProbabilityCsvWriter(options.output_csv, classifier.class_names)


def plan_images(
    results: DetectionResults, crop: CropSummary, options: RunOptions, detector: str
) -> list[tuple[str, list[PlannedCrop]]]:
    """The crops to cut, image by image, as ``crop`` plans them; counts go to ``crop``."""
    crop.images_missing_detections = results.files_missing_detections()
    plans = list(
        plan_crops(
            results,
            options.save_crops or ".",
            threshold=options.threshold,
            detector=detector,
            invalid_boxes=crop.invalid_boxes,
        )
    )
    crop.images = len(plans)
    return plans


def postprocess(
    results: DetectionResults, smooth: SmoothOptions | None, *, taxonomy: str | Path | None
) -> PostprocessSummary | None:
    """``run --smooth``: smooth (after ``--rollup``, when given) the merged results in place, as ``smooth`` does."""
    if smooth is None:
        return None
    from megaclassifier.smooth import smooth_results

    return smooth_results(results.data, smooth, taxonomy=taxonomy, source=str(results.path))


def summarize_videos(results: DetectionResults, options: RunOptions) -> VideoSummary | None:
    """``--video-summary``: one answer per video entry, in place (after smoothing); None without it."""
    if options.video_summary is None:
        return None
    from megaclassifier.smooth.videos import summarize_videos as summarize

    return summarize(results.data, options.video_summary, nth=options.video_summary_nth)


def classified_rows(
    batches: Iterator[Batch],
    classifier: Classifier,
    summary: RunSummary,
    options: RunOptions,
    *,
    bar: Any,
    csv: RowWriter | None,
) -> Iterator[tuple[CropRef, Classifications]]:
    """Classify each batch (one in flight) and yield each crop's ``((file, index), classifications)``.

    Also writes the probability CSV rows and counts the crops in ``summary`` and on ``bar``.
    """
    for keys, probabilities in pipelined(classifier.engine.submit, batches):
        if csv is not None:
            csv.write_rows([key for _, _, key in keys], probabilities)
        lists = classifier.classification_lists(
            probabilities, threshold=options.classification_threshold, max_classifications=options.max_classifications
        )
        summary.classified += len(keys)
        bar.update(len(keys))
        for (file, index, _), classifications in zip(keys, lists, strict=True):
            yield (file, index), classifications


def _where(classifier: Classifier) -> tuple[str, str]:
    return classifier.engine.backend, classifier.engine.device


def _batches(
    images: Iterator[CutImage[Any]], batch_size: int, crop: CropSummary, bar: Any, device: str = "cpu"
) -> Iterator[Batch]:
    """Stack the prepared crops into batches of ``batch_size`` (on ``device`` when they are tensors there).

    Also records each image in ``crop``.
    """
    keys: list[tuple[str, int, str]] = []
    arrays: list[Any] = []
    stack = BatchStacker(device)
    for image in images:
        crop.record(image)
        for planned, array in _ready(image):
            keys.append((image.file, planned.index, planned.key))
            arrays.append(array)
            if len(arrays) >= batch_size:
                yield keys, stack(arrays)
                keys, arrays = [], []
        if image.planned != len(image.crops):  # failed images and size-0 boxes leave the bar's total
            bar.total -= image.planned - len(image.crops)
            bar.refresh()
    if arrays:
        yield keys, stack(arrays)


def _ready(image: CutImage[Any]) -> Iterator[tuple[PlannedCrop, Any]]:
    for planned, array in image.crops:
        if array is not None:
            yield planned, array


@contextlib.contextmanager
def progress_bar(total: int, progress: bool) -> Iterator[Any]:
    """A tqdm bar over the crops, with log lines printed above it."""
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    with tqdm(total=total, unit="crops", desc="run", disable=not progress, dynamic_ncols=True, smoothing=0.1) as bar:
        if not progress:
            yield bar
            return
        with logging_redirect_tqdm([logging.getLogger("megaclassifier")]):
            yield bar


def write_run_log(summary: RunSummary, options: RunOptions) -> None:
    """Write the run log (the crop log's keys, and the decoder's).

    Raises:
        NothingWorkedError: every image failed; the log is written, no results file is.
    """
    decoding = {"decoder": summary.decoder, "num_decoded_on_cpu_by_gpu_decoder": len(summary.crop.gpu_fallbacks)}
    extra = {**decoding, "decoded_on_cpu_by_gpu_decoder": dict(sorted(summary.crop.gpu_fallbacks.items()))}
    summary.crop.log_path = write_crop_log(options.logdir, summary.crop, prefix="run_log", extra=extra)
    summary.crop.raise_if_all_failed(f"nothing classified, {options.output_json} not written")


def finish_run(summary: RunSummary, results: DetectionResults, options: RunOptions, started: float) -> RunSummary:
    """Write the merged results; complete the summary."""
    write_detections(options.output_json, results.data)
    summary.output_json = Path(options.output_json)
    summary.output_csv = Path(options.output_csv) if options.output_csv is not None else None
    summary.seconds = time.perf_counter() - started
    return summary
