"""``features``: per-crop embeddings, the EfficientNet's pooled final features.

These are what the reference README shows for MegaClassifier,
``model._avg_pooling(model.extract_features(x)).flatten(1)``: the input of
the last linear layer, 1536 values for EfficientNet-B3. Crops are found and
preprocessed as by ``classify``. Two output formats, chosen by file name:

``.npz`` (numpy; load with ``np.load``)::

    paths      unicode array (N,)        crop keys, as classify's "path" column
    features   float32 array (N, F)

``.csv`` or ``.csv.gz``::

    path,0,1,2,...,1535
    cam1/IMG_0001.JPG___crop00_md_v5a.0.0.pt.jpg,0.1893,-0.0724,...

Features are streamed to a temporary file, so memory stays flat; the output
appears only when the run completes.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np

from megaclassifier.classify.classify import CropFailure, run_batches
from megaclassifier.classify.discovery import discover_crops
from megaclassifier.classify.loader import default_num_workers
from megaclassifier.constants import DEFAULT_BATCH_SIZE
from megaclassifier.engines import open_engine
from megaclassifier.engines.base import Pending
from megaclassifier.errors import MegaClassifierError
from megaclassifier.formats.atomic import atomic_path
from megaclassifier.formats.lock import output_lock
from megaclassifier.formats.outputs import check_writable
from megaclassifier.formats.probabilities import ProbabilityCsvWriter
from megaclassifier.models.resolved import resolve
from megaclassifier.preprocess import input_shape

logger = logging.getLogger(__name__)

FEATURE_SUFFIXES = (".npz", ".csv", ".csv.gz")


@dataclass
class FeatureSummary:
    """What a ``features`` run did."""

    output: Path
    crops: int
    extracted: int
    failures: list[CropFailure] = field(default_factory=list)
    feature_size: int = 0
    image_size: int = 0
    device: str = ""
    seconds: float = 0.0

    @property
    def failed(self) -> int:
        """Number of unreadable crops."""
        return len(self.failures)


class NpzFeatureWriter:
    """Stream (path, feature vector) rows into an ``.npz`` written atomically at the end."""

    def __init__(self, path: str | Path, width: int) -> None:
        self.path = Path(path)
        self.width = width
        self.paths: list[str] = []
        self._raw: IO[bytes] | None = None

    def __enter__(self) -> NpzFeatureWriter:
        self._raw = tempfile.TemporaryFile()  # noqa: SIM115 - closed in __exit__
        return self

    def write_rows(self, paths: Sequence[str], values: np.ndarray) -> None:
        """Append rows; ``values`` has shape (len(paths), width)."""
        assert self._raw is not None
        array = np.ascontiguousarray(values, dtype=np.float32)
        if array.shape != (len(paths), self.width):
            raise ValueError(f"expected shape ({len(paths)}, {self.width}), got {array.shape}")
        self._raw.write(array.tobytes())
        self.paths.extend(paths)

    def __exit__(self, exc_type: object, *exc: object) -> None:
        assert self._raw is not None
        try:
            if exc_type is None:
                self._finish()
        finally:
            self._raw.close()

    def _finish(self) -> None:
        assert self._raw is not None
        n = len(self.paths)
        with atomic_path(self.path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
            longest = max((len(p) for p in self.paths), default=1)
            path_dtype = np.dtype(f"<U{max(1, longest)}")
            with archive.open("paths.npy", "w", force_zip64=True) as f:
                _write_npy_header(f, path_dtype, (n,))
                for start in range(0, n, 65536):
                    f.write(np.asarray(self.paths[start : start + 65536], dtype=path_dtype).tobytes())
            with archive.open("features.npy", "w", force_zip64=True) as f:
                _write_npy_header(f, np.dtype("<f4"), (n, self.width))
                self._raw.seek(0)
                for block in iter(lambda: self._raw.read(1 << 22), b""):  # type: ignore[union-attr]
                    f.write(block)


def _write_npy_header(f: IO[bytes], dtype: np.dtype, shape: tuple[int, ...]) -> None:
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_2_0(f, header)


def extract_features(
    checkpoint: str | Path,
    crops_dir: str | Path,
    output: str | Path,
    *,
    detections_json: str | Path | None = None,
    image_size: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    num_workers: int | None = None,
    device: str = "auto",
    precision: str = "fp32",
    arch: str | None = None,
    progress: bool = False,
) -> FeatureSummary:
    """Write the pooled final features of every crop to ``.npz`` or ``.csv``.

    Args:
        checkpoint: an EfficientNet checkpoint, a TorchScript model whose last
            layer is linear, or a downloaded model's name (its checkpoint is used).
        crops_dir: the crops folder.
        output: ``.npz``, ``.csv`` or ``.csv.gz`` file to write.
        detections_json: as for ``classify``.
        image_size: input side; default the architecture's native size, else 224.
        batch_size: crops per batch.
        num_workers: crop-reading worker processes (0: in this process).
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``N``.
        precision: ``fp32``, ``fp16`` (CUDA) or ``bf16``.
        arch: EfficientNet variant of a checkpoint (inferred when None).
        progress: show a progress bar on stderr.

    Raises:
        MegaClassifierError: unsupported output name.
        InputFileError: crops folder or detections file unusable, or no crops.
        ModelError: the model cannot be loaded or gives no features.
    """
    start = time.perf_counter()
    output = Path(output)
    if not output.name.lower().endswith(FEATURE_SUFFIXES):
        raise MegaClassifierError(f"{output}: the output must end in .npz, .csv or .csv.gz")
    check_writable(output)
    with output_lock(output):  # one writer: a second features on this output stops here, naming the first
        return _extract(checkpoint, crops_dir, output, start, detections_json=detections_json, image_size=image_size,
                        batch_size=batch_size, num_workers=num_workers, device=device, precision=precision,
                        arch=arch, progress=progress)  # fmt: skip


def _extract(
    checkpoint: str | Path,
    crops_dir: str | Path,
    output: Path,
    start: float,
    *,
    detections_json: str | Path | None,
    image_size: int | None,
    batch_size: int,
    num_workers: int | None,
    device: str,
    precision: str,
    arch: str | None,
    progress: bool,
) -> FeatureSummary:
    crops = discover_crops(crops_dir, detections_json=detections_json)
    engine = open_engine(
        resolve(checkpoint, role="checkpoint"),
        device=device,
        precision=precision,
        arch=arch,
        image_size=image_size,
        features=True,
    )
    with engine:
        # one blank image first: a model without features fails here, before any crop is read
        blank = np.zeros(input_shape(engine.preprocessing, 1, engine.image_size), np.float32)
        width = int(engine.features(blank).shape[1])
        logger.info("extracting %d features per crop with %s", width, engine.describe())
        if output.name.lower().endswith(".npz"):
            writer: contextlib.AbstractContextManager = NpzFeatureWriter(output, width)
        else:
            writer = ProbabilityCsvWriter(output, [str(i) for i in range(width)])
        with writer as w:
            rows, failures = run_batches(
                crops,
                lambda batch: Pending.ready(engine.features(batch)),
                w.write_rows,
                image_size=engine.image_size,
                preprocessing=engine.preprocessing,
                batch_size=batch_size,
                num_workers=default_num_workers(engine.device) if num_workers is None else num_workers,
                progress=progress,
                desc="features",
            )
    return FeatureSummary(
        output=output,
        crops=len(crops),
        extracted=rows,
        failures=failures,
        feature_size=width,
        image_size=engine.image_size,
        device=engine.device,
        seconds=time.perf_counter() - start,
    )
