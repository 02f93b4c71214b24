"""``run --ray``: ``run`` on a Ray cluster, as a Ray Data pipeline.

::

    image list
      -> map, CPU tasks: decode and cut each image (prepare_image: the crop core, resize)
      -> map_batches, an actor pool of one engine each: GPU actors (num_gpus=1) where the
         cluster has GPUs, else as many ONNX Runtime actors as nodes: each crop's probabilities
      -> the driver: dedupe, progress file, probability CSV, classifications, merge_rows, write

The decoding side and the merge are ``run``'s own (:func:`~megaclassifier.run.prepare.prepare_image`,
:meth:`~megaclassifier.run.classifier.Classifier.classification_lists`,
:func:`~megaclassifier.merge.merge_rows`), and results come back in the detections file's
order, so the output equals a single-machine ``run``'s.

Faults: Ray Data's defaults do the retrying: a decoding task whose worker (or node) dies
is run again (``max_retries=-1``), and a dead actor is restarted with its batch retried
(``max_restarts=-1``, ``max_task_retries=-1``); an exception raised in our code is not
retried (a bad image is a recorded failure, never an exception). Ray Data drops the lost
attempt's output; the driver also drops any image it has already counted (by file and
crop key). The driver writes each finished image to a progress
file (:mod:`megaclassifier.cluster.progress`), so a rerun after a driver crash sends
only the rest to the cluster.

Every node needs megaclassifier with the ``[ray]`` extra, and the images at the same
path (a shared file system) or a ``--container-url``.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import math
import pickle
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import numpy as np

from megaclassifier.cluster.progress import Classified, ProgressWriter, progress_path, read_progress
from megaclassifier.crop.core import CutImage, PlannedCrop
from megaclassifier.crop.crop import resolve_detector
from megaclassifier.errors import MegaClassifierError, first_line
from megaclassifier.formats.detections import load_detections
from megaclassifier.formats.probabilities import ProbabilityCsvWriter
from megaclassifier.labels.descriptions import load_taxonomy_file
from megaclassifier.merge import Classifications, CropRef
from megaclassifier.run.classifier import Classifier, open_classifier
from megaclassifier.run.pipeline import (
    RunOptions,
    RunSummary,
    csv_writer,
    finish_run,
    merge_classified,
    plan_images,
    postprocess,
    prepare_options,
    progress_bar,
    summarize_videos,
    write_run_log,
)
from megaclassifier.run.prepare import PrepareOptions, prepare_image
from megaclassifier.run.shards import record_shard, run_fingerprint, take_shard

logger = logging.getLogger(__name__)

#: Images per decoding task (a Ray Data block), and at most this many blocks.
IMAGES_PER_BLOCK = 8
MAX_BLOCKS = 100_000
#: Images per actor call; their crops go through the engine in ``--batch-size`` batches.
IMAGES_PER_CALL = 16
#: Memory a decoding task reserves: a 24-megapixel photo decodes to 72 MB, plus its crops. Reserving it
#: also keeps Ray Data from fusing the decoding into the inference actors (which would leave a node's
#: other cores idle while its actor decodes).
DECODE_MEMORY = 256 * 2**20

#: What decodes one image: ``prepare_image``'s signature.
Prepare = Callable[[str, Sequence[PlannedCrop], PrepareOptions], CutImage[np.ndarray]]


@dataclass(frozen=True)
class ActorPlan:
    """The inference actors: how many, on which device, and the resources each reserves."""

    count: int
    device: str
    num_gpus: float = 0
    num_cpus: float = 0

    def describe(self) -> str:
        return f"Ray, {self.count} {'GPU' if self.device == 'cuda' else 'CPU'} actor{'s' * (self.count > 1)}"


def run_on_ray(
    detections_json: str | Path,
    model: str | Path,
    options: RunOptions,
    *,
    address: str | None = None,
    progress: bool = False,
    prepare: Prepare = prepare_image,
) -> RunSummary:
    """``run`` on a Ray cluster: the same output as :func:`~megaclassifier.run.run_pipeline`.

    Args:
        detections_json, model, options: as :func:`~megaclassifier.run.run_pipeline`.
        address: the cluster to join (``auto`` or ``HOST:PORT``); None starts a local one
            (or uses the one this process has already started).
        progress: show a progress bar on stderr.
        prepare: decodes one image on the cluster (``prepare_image``; tests wrap it).

    Raises:
        InputFileError, ModelError, LabelSpecError, MegaClassifierError: before any image is read;
        MegaClassifierError: Ray is not installed or the cluster cannot be reached.
    """
    started = time.perf_counter()
    results = load_detections(detections_json)
    selection = take_shard(results, options.shard)
    detector = resolve_detector(results, options.detector_version)
    class_taxa = load_taxonomy_file(options.taxonomy) if options.taxonomy is not None else None
    classifier = _check_classifier(model, options)
    summary = RunSummary()
    plans = plan_images(results, summary.crop, options, detector)
    record = {"run": run_fingerprint(detections_json, model, options), "shard": _shard_text(options)}
    done = read_progress(progress_path(options.output_json), record)
    with contextlib.ExitStack() as stack:
        ray = stack.enter_context(_cluster(address))
        writer = ProgressWriter(progress_path(options.output_json), record, done.values())
        stack.callback(writer.close, finished=False)
        actors = actor_plan(ray, options.device)
        summary.engine = actors.describe()
        todo = [(file, crops) for file, crops in plans if file not in done]
        fresh = writer.record(cluster_images(todo, model, options, classifier, actors, prepare=prepare))
        bar = stack.enter_context(progress_bar(sum(len(crops) for _, crops in plans), progress))
        csv = stack.enter_context(csv_writer(options, classifier))
        rows = merge_input(itertools.chain(done.values(), fresh), classifier, summary, options, bar=bar, csv=csv)
        summary.merged = merge_classified(results, rows, classifier, options, class_taxa)
    summary.postprocessed = postprocess(results, options.smooth, taxonomy=options.taxonomy)
    summary.videos = summarize_videos(results, options)
    record_shard(results, selection, detections_json=detections_json, model=model, options=options)
    write_run_log(summary, options)
    finish_run(summary, results, options, started)
    progress_path(options.output_json).unlink(missing_ok=True)
    return summary


def _shard_text(options: RunOptions) -> str | None:
    return str(options.shard) if options.shard is not None else None


def _check_classifier(model: str | Path, options: RunOptions) -> Classifier:
    """The driver's classifier: class names, mapping and checks (on the CPU, engine closed again).

    Opening it here also exports the ONNX model once, before the actors look for it.
    """
    classifier = open_classifier(
        model,
        classifier_categories=options.classifier_categories,
        target_mapping=options.target_mapping,
        classifier_name=options.classifier_name,
        image_size=options.image_size,
        device="cpu",
        backend=options.backend,
        arch=options.arch,
    )
    classifier.engine.close()
    return classifier


@contextlib.contextmanager
def _cluster(address: str | None) -> Iterator[Any]:
    """The ``ray`` module, connected: to ``address``, else a new local cluster (shut down after)."""
    try:
        import ray
    except ImportError:
        raise MegaClassifierError("--ray needs Ray: pip install 'megaclassifier[ray]'") from None
    if ray.is_initialized():
        yield ray
        return
    try:
        ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError) as e:
        where = f"at {address}" if address else "on this machine"
        raise MegaClassifierError(f"cannot start or join the Ray cluster {where}: {first_line(e)}") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def actor_plan(ray: Any, device: str) -> ActorPlan:
    """One GPU actor per GPU of the cluster (unless ``--device cpu``), else as many CPU actors as nodes.

    A CPU actor reserves one CPU, leaving the others to the decoding tasks; its ONNX Runtime
    session uses the node's physical cores, as ``run`` does on one machine.
    """
    gpus = int(ray.cluster_resources().get("GPU", 0))
    if gpus and device != "cpu":
        return ActorPlan(gpus, "cuda", num_gpus=1)
    nodes = sum(1 for node in ray.nodes() if node.get("Alive"))
    return ActorPlan(max(1, nodes), "cpu", num_cpus=1)


def cluster_images(
    plans: list[tuple[str, list[PlannedCrop]]],
    model: str | Path,
    options: RunOptions,
    classifier: Classifier,
    actors: ActorPlan,
    *,
    prepare: Prepare = prepare_image,
) -> Iterator[Classified]:
    """Decode, cut and classify ``plans`` on the cluster; yield each image once, in ``plans``' order."""
    if not plans:
        return
    dataset = ray_dataset(plans, model, options, classifier, actors, prepare=prepare)
    yield from first_copies(pickle.loads(row["result"]) for row in dataset.iter_rows())


def ray_dataset(
    plans: list[tuple[str, list[PlannedCrop]]],
    model: str | Path,
    options: RunOptions,
    classifier: Classifier,
    actors: ActorPlan,
    *,
    prepare: Prepare = prepare_image,
) -> Any:
    """The Ray Data pipeline (lazy): decoding tasks, then the actor pool; one ``result`` row per image."""
    import ray.data

    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    items = [{"file": file, "plan": pickle.dumps(crops)} for file, crops in plans]
    blocks = max(1, min(len(items), MAX_BLOCKS, math.ceil(len(items) / IMAGES_PER_BLOCK)))
    engine = _EngineSpec(str(model), actors.device, options, classifier.engine.image_size)
    return (
        ray.data.from_items(items, override_num_blocks=blocks)
        .map(
            functools.partial(_decode, options=prepare_options(options, classifier.engine), prepare=prepare),
            num_cpus=1,
            memory=DECODE_MEMORY,
        )
        .map_batches(
            _Classify,
            fn_constructor_kwargs={"engine": engine},
            batch_size=IMAGES_PER_CALL,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=actors.count),
            num_gpus=actors.num_gpus,
            num_cpus=actors.num_cpus,
        )
    )


def first_copies(items: Iterable[Classified]) -> Iterator[Classified]:
    """Each image once: a repeat of a file or crop key already seen (a retried task's) is dropped."""
    seen: set[str] = set()
    for item in items:
        keys = [item.image.file, *(key for _, key in item.crops)]
        if seen.intersection(keys):
            logger.debug("%s came back twice; counted once", item.image.file)
            continue
        seen.update(keys)
        yield item


def merge_input(
    items: Iterable[Classified],
    classifier: Classifier,
    summary: RunSummary,
    options: RunOptions,
    *,
    bar: Any,
    csv: ProbabilityCsvWriter | None,
) -> Iterator[tuple[CropRef, Classifications]]:
    """Record each image, write its CSV rows, and yield its crops' ``((file, index), classifications)``."""
    for item in items:
        summary.crop.record(item.image)
        if item.image.planned != len(item.crops):  # failed images and size-0 boxes leave the bar's total
            bar.total -= item.image.planned - len(item.crops)
            bar.refresh()
        if not item.crops:
            continue
        if csv is not None:
            csv.write_rows([key for _, key in item.crops], item.probabilities)
        lists = classifier.classification_lists(
            item.probabilities,
            threshold=options.classification_threshold,
            max_classifications=options.max_classifications,
        )
        summary.classified += len(item.crops)
        bar.update(len(item.crops))
        for (index, _), classifications in zip(item.crops, lists, strict=True):
            yield (item.image.file, index), classifications


# -- what runs on the cluster


def _decode(row: dict[str, Any], *, options: PrepareOptions, prepare: Prepare) -> dict[str, Any]:
    """One image: decoded and cut by ``prepare``, pickled (crops as uint8 arrays)."""
    return {"image": pickle.dumps(prepare(row["file"], pickle.loads(row["plan"]), options))}


@dataclass(frozen=True)
class _EngineSpec:
    """What an actor opens: the model and the engine options of the run."""

    model: str
    device: str
    options: RunOptions
    image_size: int


class _Classify:
    """An inference actor: one engine, opened once; a batch of images in, their probabilities out."""

    def __init__(self, engine: _EngineSpec) -> None:
        from megaclassifier.engines import open_engine

        options = engine.options
        precision = options.precision if engine.device == "cuda" else "fp32"
        self.engine = open_engine(
            engine.model,
            backend=options.backend,
            device=engine.device,
            precision=precision,
            arch=options.arch,
            image_size=engine.image_size,
        )
        self.batch_size = options.batch_size

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        images: list[CutImage[np.ndarray]] = [pickle.loads(data) for data in batch["image"]]
        arrays = [array for image in images for _, array in image.crops if array is not None]
        probabilities = self._predict(arrays)
        out, start = [], 0
        for image in images:
            crops = [(planned.index, planned.key) for planned, array in image.crops if array is not None]
            record = cast("CutImage[None]", replace(image, crops=[]))
            item = Classified(record, crops, probabilities[start : start + len(crops)])
            out.append(pickle.dumps(item))
            start += len(crops)
        return {"result": np.array(out, dtype=object)}

    def _predict(self, arrays: list[np.ndarray]) -> np.ndarray:
        if not arrays:
            return np.zeros((0, self.engine.num_classes), dtype=np.float32)
        chunks = [np.stack(arrays[i : i + self.batch_size]) for i in range(0, len(arrays), self.batch_size)]
        return np.concatenate([self.engine.predict(chunk) for chunk in chunks])
