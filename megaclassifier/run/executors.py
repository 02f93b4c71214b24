"""Who decodes and classifies a run's images: the executors that ``run``'s driver hands work to.

The driver (:func:`megaclassifier.run.pipeline.run_pipeline`) owns the plan, the journal,
the merge and the outputs; an executor owns only the work in between::

    todo images (file, planned crops) -> executor -> (image records, probability batches)

Each executor:

* opens the driver's classifier (:meth:`open_classifier`) on the device it wants there;
* :meth:`start` (a context) brings up what it runs on (this process's engine, a Ray cluster);
* :meth:`classify` calls ``seen(image, ready)`` once per image when it is decoded (its record,
  crops emptied or not, and how many of its crops will come), before any of its probabilities,
  and yields :data:`ProbabilityBatch` es: ``[(file, detection index, crop key), ...]`` and their
  float32 ``(crops, classes)`` probabilities, images in the order given.

Everything after the probabilities (CSV rows, classifications, journal, merge, post-steps) is
the driver's, so every executor gives the same output. :class:`LocalExecutor` decodes in
``num_workers`` processes (0: in this process, the in-process executor) and runs the engine
here; ``run --ray``'s is :class:`megaclassifier.cluster.ray_run.RayExecutor`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from megaclassifier.crop.core import CutImage, PlannedCrop
from megaclassifier.engines import Engine, pipelined
from megaclassifier.errors import MegaClassifierError
from megaclassifier.models.resolved import ResolvedModel
from megaclassifier.run.classifier import Classifier, open_classifier
from megaclassifier.run.decoders import BatchStacker, decode_device, decoded_stream, resolve_decoder
from megaclassifier.run.options import RunOptions, RunSummary
from megaclassifier.run.prepare import PrepareOptions, default_run_workers

if TYPE_CHECKING:
    from megaclassifier.run.plan import Plans, RunPlan

#: One batch of crops: (file, detection index, crop key) of each, and their probabilities (or model inputs).
ProbabilityBatch = tuple[list[tuple[str, int, str]], np.ndarray]
#: Told of each image when it is decoded: its record and how many of its crops will be classified.
ImageSeen = Callable[[CutImage[Any], int], None]


class Executor(Protocol):
    """What the driver needs of an executor (see the module docstring)."""

    def open_classifier(self, model: ResolvedModel, options: RunOptions) -> Classifier: ...

    def start(self, plan: RunPlan, summary: RunSummary) -> contextlib.AbstractContextManager[None]: ...

    def engine_key(self) -> list[Any]: ...

    def classify(self, todo: Plans, seen: ImageSeen) -> Iterator[ProbabilityBatch]: ...


def run_classifier(model: ResolvedModel, options: RunOptions, *, device: str | None = None) -> Classifier:
    """The run's classifier, with the engine options of ``options`` (on ``device`` when given)."""
    return open_classifier(
        model,
        classifier_categories=options.classifier_categories,
        target_mapping=options.target_mapping,
        classifier_name=options.classifier_name,
        image_size=options.image_size,
        device=options.device if device is None else device,
        precision=options.precision if device is None else "fp32",
        backend=options.backend,
        arch=options.arch,
    )


def prepare_options(options: RunOptions, engine: Engine) -> PrepareOptions:
    """What the CPU decoding side does for this engine: cut as its profile says, resize to its input."""
    profile = engine.preprocessing
    return PrepareOptions(options.cut_options(profile, engine.image_size), engine.image_size, profile)


class LocalExecutor:
    """This machine: decoding in ``num_workers`` processes (0: this one), the engine in this process.

    Args:
        num_workers: decoding processes; None: :func:`~megaclassifier.run.prepare.default_run_workers`.
    """

    def __init__(self, num_workers: int | None = None) -> None:
        self.num_workers = num_workers
        self._plan: RunPlan | None = None
        self._summary: RunSummary | None = None

    def open_classifier(self, model: ResolvedModel, options: RunOptions) -> Classifier:
        return run_classifier(model, options)

    @contextlib.contextmanager
    def start(self, plan: RunPlan, summary: RunSummary) -> Iterator[None]:
        """The engine open for the block; the summary names it and the decoder."""
        self._plan, self._summary = plan, summary
        engine = plan.classifier.engine
        with engine:
            summary.engine = engine.describe()
            summary.decoder = self._decoder(plan.options, engine)
            yield

    def engine_key(self) -> list[Any]:
        engine = self._classifier.engine
        return [engine.backend, engine.device, engine.precision, engine.arch]

    @property
    def _classifier(self) -> Classifier:
        assert self._plan is not None, "start() first"
        return self._plan.classifier

    def classify(self, todo: Plans, seen: ImageSeen) -> Iterator[ProbabilityBatch]:
        """Decode ``todo`` and run the engine, one batch in flight while the next is gathered."""
        assert self._plan is not None and self._summary is not None, "start() first"
        options, engine = self._plan.options, self._classifier.engine
        workers = default_run_workers(engine.device) if self.num_workers is None else self.num_workers
        device = decode_device(engine.backend, engine.device)
        images = decoded_stream(
            todo, prepare_options(options, engine), self._summary.decoder, device=device, workers=workers
        )
        yield from pipelined(engine.submit, stacked_batches(images, options.batch_size, seen, device))

    @staticmethod
    def _decoder(options: RunOptions, engine: Engine) -> str:
        """The decoder ``options`` ask for, for this engine."""
        decoder = options.decoder
        if engine.preprocessing.crop_geometry != "reference":  # SpeciesNet's resize is its own: the CPU path does it
            if decoder in ("gpu", "hybrid"):
                raise MegaClassifierError(f"--decoder {decoder} does not apply to {engine.model_path}: use cpu or auto")
            decoder = "cpu"
        return resolve_decoder(decoder, exact=options.exact, backend=engine.backend, device=engine.device)


def stacked_batches(
    images: Iterator[CutImage[Any]], batch_size: int, seen: ImageSeen, device: str = "cpu"
) -> Iterator[ProbabilityBatch]:
    """Stack the prepared crops into batches of ``batch_size`` (on ``device`` when they are tensors there).

    ``seen`` is told of each image as it comes, before its crops are stacked.
    """
    keys: list[tuple[str, int, str]] = []
    arrays: list[Any] = []
    stack = BatchStacker(device)
    for image in images:
        ready = list(_ready(image))
        seen(image, len(ready))
        for planned, array in ready:
            keys.append((image.file, planned.index, planned.key))
            arrays.append(array)
            if len(arrays) >= batch_size:
                yield keys, stack(arrays)
                keys, arrays = [], []
    if arrays:
        yield keys, stack(arrays)


def _ready(image: CutImage[Any]) -> Iterator[tuple[PlannedCrop, Any]]:
    for planned, array in image.crops:
        if array is not None:
            yield planned, array
