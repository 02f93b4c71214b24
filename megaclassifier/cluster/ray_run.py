"""``run --ray``: ``run`` on a Ray cluster, as a Ray Data pipeline.

::

    image list
      -> map, CPU tasks: decode and cut each image (prepare_image: the crop core, resize)
      -> map_batches, an actor pool of one engine each: GPU actors (num_gpus=1) where the
         cluster has GPUs, else as many ONNX Runtime actors as nodes: each crop's probabilities
      -> run's driver: dedupe, then what every executor's output goes through (journal, CSV,
         classifications, merge_rows, the steps after the merge, the output)

:class:`RayExecutor` is one of ``run``'s executors (:mod:`megaclassifier.run.executors`):
the driver (:func:`~megaclassifier.run.pipeline.run_pipeline`) plans the run, locks and
checks the outputs, keeps the journal and merges, for ``--ray`` as for a local run; the
decoding is ``run``'s own (:func:`~megaclassifier.run.prepare.prepare_image`), and results
come back in the detections file's order, so the output equals a single-machine ``run``'s
for every option by construction.

Faults: Ray Data's defaults do the retrying: a decoding task whose worker (or node) dies
is run again (``max_retries=-1``), and a dead actor is restarted with its batch retried
(``max_restarts=-1``, ``max_task_retries=-1``); an exception raised in our code is not
retried (a bad image is a recorded failure, never an exception). Ray Data drops the lost
attempt's output; the driver also drops any image it has already counted (by file and
crop key). The driver journals each finished image (``OUTPUT_JSON.journal``, the journal
of every run: :mod:`megaclassifier.run.resume`), so a rerun after a driver crash sends
only the rest to the cluster; ``--restart`` starts afresh.

Every node needs megaclassifier with the ``[ray]`` extra, and the images at the same
path (a shared file system) or a ``--container-url``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import pickle
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import numpy as np

from megaclassifier.crop.core import CutImage, PlannedCrop
from megaclassifier.errors import MegaClassifierError, first_line
from megaclassifier.models.resolved import ResolvedModel
from megaclassifier.run.classifier import Classifier
from megaclassifier.run.executors import ImageSeen, ProbabilityBatch, prepare_options, run_classifier
from megaclassifier.run.options import RunOptions, RunSummary
from megaclassifier.run.pipeline import run_pipeline
from megaclassifier.run.plan import Plans, RunPlan
from megaclassifier.run.prepare import PrepareOptions, prepare_image

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


@dataclass
class Classified:
    """One image back from the cluster: what cutting it did, its crops and their probabilities (rows in order).

    Attributes:
        image: the crop core's record of the image, its crop list emptied (the pixels stay on the cluster).
        crops: ``(detection index, crop key)`` of each crop classified.
        probabilities: float32 (len(crops), classes).
    """

    image: CutImage[None]
    crops: list[tuple[int, str]]
    probabilities: np.ndarray


def run_on_ray(
    detections_json: str | Path,
    model: str | Path | ResolvedModel,
    options: RunOptions,
    *,
    address: str | None = None,
    progress: bool = False,
    prepare: Prepare = prepare_image,
) -> RunSummary:
    """``run`` on a Ray cluster: :func:`~megaclassifier.run.run_pipeline` with the :class:`RayExecutor`.

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
    executor = RayExecutor(address=address, prepare=prepare)
    return run_pipeline(detections_json, model, options, progress=progress, executor=executor)


class RayExecutor:
    """``run``'s executor on a Ray cluster: decoding tasks, then an actor pool of engines.

    Args:
        address: the cluster to join; None starts a local one (or uses this process's).
        prepare: decodes one image on the cluster.
    """

    def __init__(self, *, address: str | None = None, prepare: Prepare = prepare_image) -> None:
        self.address = address
        self.prepare = prepare
        self._plan: RunPlan | None = None
        self._actors: ActorPlan | None = None

    def open_classifier(self, model: ResolvedModel, options: RunOptions) -> Classifier:
        _import_ray()  # before the model is loaded: without Ray, say so at once
        if options.decoder in ("gpu", "hybrid"):  # Ray's decoding tasks run Pillow on the nodes' CPUs
            raise MegaClassifierError(
                f"--decoder {options.decoder} decodes on this machine's GPU; under --ray the images are decoded "
                "by CPU tasks on the cluster: use --decoder cpu or auto"
            )
        return _check_classifier(model, options)

    @contextlib.contextmanager
    def start(self, plan: RunPlan, summary: RunSummary) -> Iterator[None]:
        """Connect to (or start) the cluster for the block and plan the actors."""
        with _cluster(self.address) as ray:
            self._plan = plan
            self._actors = actor_plan(ray, plan.options.device)
            summary.engine = self._actors.describe()
            summary.decoder = "cpu"
            yield

    def engine_key(self) -> list[Any]:
        assert self._plan is not None and self._actors is not None, "start() first"
        options = self._plan.options
        return ["ray", self._actors.device, options.backend, options.precision, options.arch]

    def classify(self, todo: Plans, seen: ImageSeen) -> Iterator[ProbabilityBatch]:
        """Each image's record to ``seen``, then its crops' probabilities, in ``todo``'s order."""
        assert self._plan is not None and self._actors is not None, "start() first"
        plan = self._plan
        classified = cluster_images(todo, plan.model, plan.options, plan.classifier, self._actors, prepare=self.prepare)
        for item in first_copies(classified):
            seen(item.image, len(item.crops))
            if item.crops:
                yield [(item.image.file, index, key) for index, key in item.crops], item.probabilities


def _check_classifier(model: str | Path | ResolvedModel, options: RunOptions) -> Classifier:
    """The driver's classifier: class names, mapping and checks (on the CPU, engine closed again).

    Opening it here also exports the ONNX model once, before the actors look for it.
    """
    from megaclassifier.models.resolved import resolve

    classifier = run_classifier(resolve(model), options, device="cpu")
    classifier.engine.close()
    return classifier


@contextlib.contextmanager
def _cluster(address: str | None) -> Iterator[Any]:
    """The ``ray`` module, connected: to ``address``, else a new local cluster (shut down after)."""
    ray = _import_ray()
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


def _import_ray() -> Any:
    """The ``ray`` module.

    Raises:
        MegaClassifierError: Ray is not installed.
    """
    try:
        import ray
    except ImportError:
        raise MegaClassifierError("--ray needs Ray: pip install 'megaclassifier[ray]'") from None
    return ray


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
    model: str | Path | ResolvedModel,
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
    model: str | Path | ResolvedModel,
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
    from megaclassifier.models.resolved import resolve

    engine = _EngineSpec(resolve(model), actors.device, options, classifier.engine.image_size)
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


# -- what runs on the cluster


def _decode(row: dict[str, Any], *, options: PrepareOptions, prepare: Prepare) -> dict[str, Any]:
    """One image: decoded and cut by ``prepare``, pickled (crops as uint8 arrays)."""
    return {"image": pickle.dumps(prepare(row["file"], pickle.loads(row["plan"]), options))}


@dataclass(frozen=True)
class _EngineSpec:
    """What an actor opens: the model (resolved once, by the driver) and the engine options of the run."""

    model: ResolvedModel
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
