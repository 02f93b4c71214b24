"""``classify``: run a classifier over a folder of crops and write the probability CSV.

The output is the reference's (see :mod:`megaclassifier.formats.probabilities`)::

    path,deer,elk,cow,bear
    cam1/IMG_0001.JPG___crop00_md_v5a.0.0.pt.jpg,0.7,0.2,0.05,0.05

Header ``path`` then the class names in index order (``0``..``N-1`` without
a categories file); float32 softmax probabilities in their shortest form;
gzip for a ``.gz`` name. Rows follow the crop order of
:mod:`megaclassifier.classify.discovery`. Rows are streamed into a temporary
file that replaces ``output`` only when the run completes. A crop that cannot
be read is logged with its reason, gets no row, and is counted.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from megaclassifier.classify.discovery import CropList, discover_crops
from megaclassifier.classify.loader import default_num_workers, iter_batches
from megaclassifier.constants import DEFAULT_BATCH_SIZE
from megaclassifier.engines import Engine, Pending, open_engine, pipelined
from megaclassifier.errors import ModelError
from megaclassifier.formats.hashing import file_sha256
from megaclassifier.formats.journal import Fingerprint, Journal, file_stamp, open_journal
from megaclassifier.formats.lock import output_lock
from megaclassifier.formats.outputs import check_writable
from megaclassifier.formats.probabilities import ProbabilityCsvWriter
from megaclassifier.models.resolved import ResolvedModel, resolve
from megaclassifier.preprocess import REFERENCE, Preprocessing

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CropFailure:
    """A crop that could not be read."""

    key: str
    reason: str


@dataclass
class ClassifySummary:
    """What a ``classify`` run did.

    Attributes:
        output: the CSV written.
        crops: crops found.
        classified: rows written.
        failures: crops that could not be read (no row).
        num_classes: columns after ``path``.
        image_size: input side used.
        backend: ``torch`` or ``onnxruntime``.
        device: ``cpu`` or ``cuda:N``.
        precision: ``fp32``, ``fp16`` or ``bf16``.
        arch: the EfficientNet variant, when recognised.
        seconds: wall time of the run (model loading included).
    """

    output: Path
    crops: int
    classified: int
    failures: list[CropFailure] = field(default_factory=list)
    num_classes: int = 0
    image_size: int = 0
    backend: str = ""
    device: str = ""
    precision: str = ""
    arch: str | None = None
    seconds: float = 0.0

    @property
    def failed(self) -> int:
        """Number of unreadable crops."""
        return len(self.failures)

    @property
    def crops_per_second(self) -> float:
        """Crops handled per second of wall time."""
        return (self.classified + self.failed) / self.seconds if self.seconds > 0 else 0.0


def check_class_count(engine: Engine, names: list[str] | None, classifier_categories: str | Path | None) -> None:
    """The model's output width must equal the number of class names.

    Raises:
        ModelError: naming the model, its width and the categories file.
    """
    if names is not None and len(names) != engine.num_classes:
        source = classifier_categories or "its categories file"
        raise ModelError(
            f"{engine.model_path}: the model has {engine.num_classes} outputs but {source} names "
            f"{len(names)} classes; is this the right categories file?"
        )


def run_batches(
    crops: CropList,
    submit: Callable[[np.ndarray], Pending],
    write: Callable[[Sequence[str], np.ndarray], None],
    *,
    image_size: int,
    batch_size: int,
    num_workers: int,
    progress: bool,
    desc: str,
    preprocessing: Preprocessing = REFERENCE,
    indices: Sequence[int] | None = None,
) -> tuple[int, list[CropFailure]]:
    """Feed every crop (or those of ``indices``, in order) through ``submit`` and ``write`` the rows.

    Returns (rows, failures). One batch stays in flight (:func:`~megaclassifier.engines.base.pipelined`):
    the next is loaded while the engine works on it.
    """
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    rows = 0
    failures: list[CropFailure] = []
    total = len(crops) if indices is None else len(indices)
    bar = tqdm(total=total, unit="crops", desc=desc, disable=not progress, dynamic_ncols=True, smoothing=0.1)
    redirect = logging_redirect_tqdm([logging.getLogger("megaclassifier")]) if progress else contextlib.nullcontext()

    def readable_batches() -> Iterator[tuple[list[str], np.ndarray]]:
        batches = iter_batches(
            crops,
            image_size=image_size,
            batch_size=batch_size,
            num_workers=num_workers,
            preprocessing=preprocessing,
            indices=indices,
        )
        for batch in batches:
            for index, reason in batch.failures:
                failure = CropFailure(crops.keys[index], reason)
                logger.warning("%s: cannot read this crop (%s); no row written", failure.key, failure.reason)
                failures.append(failure)
            if batch.failures:
                bar.update(len(batch.failures))
                bar.set_postfix(unreadable=len(failures), refresh=False)
            if batch.images is not None:
                yield [crops.keys[i] for i in batch.indices], batch.images.numpy()

    with bar, redirect:
        for keys, values in pipelined(submit, readable_batches()):
            write(keys, values)
            rows += len(keys)
            bar.update(len(keys))
    return rows, failures


def classify_crops(
    model: str | Path | ResolvedModel,
    crops_dir: str | Path,
    output: str | Path,
    *,
    detections_json: str | Path | None = None,
    classifier_categories: str | Path | None = None,
    image_size: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    num_workers: int | None = None,
    device: str = "auto",
    precision: str = "fp32",
    backend: str = "auto",
    arch: str | None = None,
    restart: bool = False,
    progress: bool = False,
) -> ClassifySummary:
    """Classify every crop and write the probability CSV.

    Args:
        model: TorchScript file, EfficientNet checkpoint, or a downloaded model's name.
        crops_dir: the crops folder.
        output: CSV to write (``.csv.gz`` for gzip).
        detections_json: classify the crops of this MegaDetector file, in its order;
            without it, every image file below ``crops_dir``, sorted.
        classifier_categories: index-to-name JSON giving the column names; for a
            downloaded model name, its own file by default.
        image_size: input side; default the architecture's native size, else 224.
        batch_size: crops per batch.
        num_workers: crop-reading worker processes (0: in this process); default
            :func:`~megaclassifier.classify.loader.default_num_workers`.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``N``.
        precision: ``fp32``, ``fp16`` (CUDA) or ``bf16``.
        backend: ``auto``, ``torch`` or ``onnxruntime``.
        arch: EfficientNet variant of a checkpoint (inferred when None).
        restart: ignore the resume journal (``OUTPUT.journal``) of an interrupted run and start afresh.
        progress: show a progress bar on stderr.

    Raises:
        OutputFileError: ``output`` cannot be written (checked before any work).
        OutputLockedError: another process writes ``output`` (:mod:`megaclassifier.formats.lock`).
        InputFileError: crops folder, detections or categories file unusable, or no crops.
        ModelError: the model cannot be loaded or its width differs from the categories.
    """
    start = time.perf_counter()
    output = Path(output)
    check_writable(output)
    with output_lock(output):  # one writer: a second classify on this output stops here, naming the first
        resolved = resolve(model)
        names = resolved.class_names(classifier_categories)
        crops = discover_crops(crops_dir, detections_json=detections_json)
        engine = open_engine(
            resolved, backend=backend, device=device, precision=precision, arch=arch, image_size=image_size
        )
        with engine:
            check_class_count(engine, names, classifier_categories)
            labels = names if names is not None else [str(i) for i in range(engine.num_classes)]
            workers = default_num_workers(engine.device) if num_workers is None else num_workers
            fingerprint = classify_fingerprint(
                engine, crops, labels, batch_size=batch_size, detections_json=detections_json, model=resolved
            )
            journal = open_journal(output, fingerprint, restart=restart)
            with journal, ProbabilityCsvWriter(output, labels) as writer:
                remaining = replay_rows(journal, writer, crops)
                logger.info("classifying %d crops with %s", len(remaining), engine.describe())
                rows, failures = run_batches(
                    crops,
                    engine.submit,
                    journaled_writer(writer, journal),
                    image_size=engine.image_size,
                    preprocessing=engine.preprocessing,
                    batch_size=batch_size,
                    num_workers=workers,
                    progress=progress,
                    desc="classify",
                    indices=remaining,
                )
                rows += len(crops) - len(remaining)
            journal.finish()
    return ClassifySummary(
        output=output,
        crops=len(crops),
        classified=rows,
        failures=failures,
        num_classes=engine.num_classes,
        image_size=engine.image_size,
        backend=engine.backend,
        device=engine.device,
        precision=engine.precision,
        arch=engine.arch,
        seconds=time.perf_counter() - start,
    )


def classify_fingerprint(
    engine: Engine,
    crops: CropList,
    labels: list[str],
    *,
    batch_size: int,
    detections_json: str | Path | None,
    model: ResolvedModel | None = None,
) -> Fingerprint:
    """What ``classify``'s output depends on, for its resume journal (crop files are named, not hashed).

    The model by content: ``model``'s identity (:mod:`megaclassifier.models.resolved`), else the engine's file.
    """
    keys = hashlib.sha256()
    for index in range(len(crops)):
        keys.update(crops.keys[index].encode("utf-8", "surrogateescape") + b"\0")
    return {
        "model_sha256": model.identity if model is not None else file_sha256(engine.model_path),
        "image_size": engine.image_size,
        "engine": [engine.backend, engine.device, engine.precision, engine.arch],
        "batch_size": batch_size,
        "class_names": labels,
        "crops_folder": str(crops.crops_dir.resolve()),
        "crop_list_sha256": keys.hexdigest(),
        "input_file": file_stamp(detections_json),
    }


def replay_rows(journal: Journal, writer: ProbabilityCsvWriter, crops: CropList) -> list[int]:
    """Write the rows an interrupted run journaled; return the indices of the crops still to classify.

    Crops that failed before are tried again (they have no row, so the order of the rows is kept).
    """
    done: set[str] = set()
    for record in journal.records:
        writer.write_formatted(record["rows"])
        done.update(row[0] for row in record["rows"])
    journal.records.clear()  # written: no need to keep them in memory
    if not done:
        return list(range(len(crops)))
    return [index for index in range(len(crops)) if crops.keys[index] not in done]


def journaled_writer(writer: ProbabilityCsvWriter, journal: Journal) -> Callable[[Sequence[str], np.ndarray], None]:
    """``writer.write_rows`` that also journals each batch's rows, exactly as written."""

    def write(paths: Sequence[str], values: np.ndarray) -> None:
        rows = writer.format_rows(paths, values)
        writer.write_formatted(rows)
        journal.append({"rows": rows})

    return write
