"""The ONNX Runtime engine: the fastest way to run a classifier on the CPU.

The TorchScript model or checkpoint is exported to ONNX once (torch's
TorchScript-based exporter, ``dynamo=False``, opset 17, dynamic batch, fixed
S x S input; no onnxscript needed) and cached beside the model file::

    megaclassifier_v0.1_efficientnet-b3_compiled.pt
    megaclassifier_v0.1_efficientnet-b3_compiled.pt.3f2a9c0e1d4b5a67.300px.onnx

The key is the first 16 hex digits of the model file's SHA-256 and the image
size. When the model's folder is not writable, the cache is
``<user cache>/onnx/`` instead. When an engine opens, its probabilities on a
fixed probe batch are compared with torch's; they must agree within 1e-4. A
passed check is recorded beside the export (:mod:`megaclassifier.engines.onnx_check`),
and later starts with the same model, export and ONNX Runtime skip it.

The session uses one intra-op thread per physical core available. On the
CPU, batches are run four images at a time (:data:`CPU_CHUNK`): faster, and
far less memory, than whole batches.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from megaclassifier.engines import onnx_check
from megaclassifier.engines.base import Engine, check_batch, softmax
from megaclassifier.errors import ModelError, first_line
from megaclassifier.formats.atomic import apply_umask
from megaclassifier.formats.hashing import file_sha256
from megaclassifier.hardware import physical_cpu_count
from megaclassifier.models.loading import LoadedModel
from megaclassifier.models.registry import user_cache_dir
from megaclassifier.preprocess import REFERENCE, Preprocessing, input_shape

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

OPSET = 17
#: Images per ONNX Runtime call on the CPU. Small runs are faster there (cache-resident activations) and
#: keep the memory arena small: EfficientNet-B3 at 300 px, 2 cores: 35 crops/s and 0.5 GiB in runs of 4,
#: 29 crops/s and 2.6 GiB in runs of 32.
CPU_CHUNK = 4
#: Largest difference allowed between ONNX Runtime's and torch's probabilities.
TOLERANCE = 1e-4


def onnx_cache_name(model_path: Path, image_size: int, model_sha256: str | None = None) -> str:
    """The cache file name of a model's ONNX export at an image size."""
    digest = model_sha256 or file_sha256(model_path)
    return f"{model_path.name}.{digest[:16]}.{image_size}px.onnx"


def _candidates(model_path: Path, name: str) -> list[Path]:
    return [model_path.parent / name, user_cache_dir() / "onnx" / name]


class OnnxExportError(ModelError):
    """torch's ONNX exporter failed; ``cause`` is its error on one line."""

    def __init__(self, cause: str) -> None:
        self.cause = cause
        super().__init__(f"cannot export to ONNX ({cause}); use --backend torch")


def export_onnx(
    module: torch.nn.Module, destination: Path, image_size: int, profile: Preprocessing = REFERENCE
) -> None:
    """Export ``module`` (fp32, CPU) to ONNX at ``destination``, atomically.

    Raises:
        OSError: ``destination``'s folder is not writable.
        OnnxExportError: the exporter fails (what it printed is logged at DEBUG level).
    """
    import torch

    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=".tmp", dir=destination.parent)
    apply_umask(fd)  # the cached model gets the mode a plain open would give, not mkstemp's 0600
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        dummy = torch.zeros(input_shape(profile, 1, image_size))
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad(), _output_silenced() as dump:
            warnings.simplefilter("ignore")
            try:
                torch.onnx.export(
                    module,
                    (dummy,),
                    str(tmp),
                    dynamo=False,
                    input_names=["input"],
                    output_names=["logits"],
                    dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                    opset_version=OPSET,
                    do_constant_folding=True,
                )
            except Exception as e:  # the exporter raises many kinds
                dump.failed = True
                raise OnnxExportError(first_line(e)) from None
        os.replace(tmp, destination)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


class _Dump:
    """What the exporter printed while :func:`_output_silenced` held stdout and stderr."""

    failed = False


@contextlib.contextmanager
def _output_silenced() -> Iterator[_Dump]:
    """Send file descriptors 1 and 2 to a temporary file meanwhile (torch prints its graph dump there, from C++).

    When the block marks the dump failed, what was printed is logged at DEBUG level (``--verbose``).
    """
    import sys

    dump = _Dump()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield dump
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            if dump.failed:
                sink.seek(0)
                logger.debug("the ONNX exporter printed:\n%s", sink.read(1 << 16).decode("utf-8", "replace"))


def cached_onnx(loaded: LoadedModel, image_size: int) -> Path:
    """The ONNX export of ``loaded`` at ``image_size``: from the cache, or exported now and cached.

    A failed export is remembered (:func:`~megaclassifier.engines.onnx_check.record_failure`) and
    not tried again for the same model and torch.

    Raises:
        ModelError: the export fails, or failed before; no writable folder.
    """
    digest = file_sha256(loaded.path)
    name = onnx_cache_name(loaded.path, image_size, digest)
    candidates = _candidates(loaded.path, name)
    for path in candidates:
        if path.is_file():
            logger.debug("using cached ONNX export %s", path)
            return path
        error = onnx_check.failed_before(path, digest)
        if error is not None:
            raise ModelError(
                f"{loaded.path}: cannot export to ONNX ({error}; remembered in {onnx_check.failure_path(path)}, "
                "delete it to try again); use --backend torch"
            )
    last_error: OSError | None = None
    for path in candidates:
        try:
            logger.info("exporting %s to ONNX (once; cached as %s)", loaded.path.name, path)
            export_onnx(loaded.module, path, image_size, loaded.preprocessing)
            return path
        except OnnxExportError as e:
            onnx_check.record_failure(path, digest, e.cause)
            raise ModelError(f"{loaded.path}: {e}") from None
        except OSError as e:
            logger.debug("cannot write %s: %s", path, e)
            last_error = e
    raise ModelError(f"{loaded.path}: no writable folder for the ONNX export ({last_error}); use --backend torch")


class OnnxEngine(Engine):
    """Runs an ONNX export of a model with ONNX Runtime."""

    backend = "onnxruntime"
    precision = "fp32"

    def __init__(
        self,
        onnx_path: Path,
        *,
        model_path: Path,
        device: str,
        image_size: int,
        num_classes: int,
        arch: str | None,
        threads: int | None = None,
        preprocessing: Preprocessing = REFERENCE,
    ) -> None:
        import onnxruntime as ort

        self.onnx_path = onnx_path
        self.model_path = model_path
        self.device = device
        self.image_size = image_size
        self.num_classes = num_classes
        self.arch = arch
        self.preprocessing = preprocessing
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or physical_cpu_count()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        if device.startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise ModelError(
                    f"--backend onnxruntime on {device} needs the onnxruntime-gpu package; use --backend torch"
                )
            providers: list[object] = [("CUDAExecutionProvider", {"device_id": int(device.split(":")[1])})]
        else:
            providers = ["CPUExecutionProvider"]
        try:
            self._session = ort.InferenceSession(str(onnx_path), options, providers=providers)
        except Exception as e:  # a damaged cache file, say
            raise ModelError(f"{onnx_path}: ONNX Runtime cannot load it ({first_line(e)})") from None
        self._input = self._session.get_inputs()[0].name
        self._chunk = None if device.startswith("cuda") else CPU_CHUNK

    def logits(self, batch: np.ndarray) -> np.ndarray:
        """The model's raw output, float32 (N, C)."""
        x = check_batch(batch, self.image_size, self.preprocessing)
        step = self._chunk or len(x)
        parts = [self._session.run(None, {self._input: x[i : i + step]})[0] for i in range(0, len(x), step)]
        out = np.concatenate(parts) if len(parts) != 1 else parts[0]
        if out.shape != (x.shape[0], self.num_classes):
            raise ModelError(f"{self.onnx_path}: unexpected output shape {out.shape} for a batch of {x.shape[0]}")
        return out

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Softmax probabilities, float32 (N, C)."""
        if len(batch) == 0:
            return np.zeros((0, self.num_classes), np.float32)
        return softmax(self.logits(batch))

    def close(self) -> None:
        self._session = None


def open_onnx_engine(
    loaded: LoadedModel, *, device: str, image_size: int, num_classes: int, reference_logits: np.ndarray
) -> OnnxEngine:
    """Export (or reuse) ``loaded`` as ONNX and check it against torch's logits on the probe batch.

    Raises:
        ModelError: export fails, or ONNX Runtime's probabilities differ from torch's by more than 1e-4.
    """
    path = cached_onnx(loaded, image_size)
    engine = OnnxEngine(
        path,
        model_path=loaded.path,
        device=device,
        image_size=image_size,
        num_classes=num_classes,
        arch=loaded.arch,
        preprocessing=loaded.preprocessing,
    )
    check_against_torch(engine, loaded, path, reference_logits, runtime="onnxruntime")
    return engine


#: The runtimes' names in messages, and the backend to use instead when their check fails.
_RUNTIME_NAMES = {"onnxruntime": ("ONNX Runtime", "torch"), "openvino": ("OpenVINO", "onnxruntime")}


def check_against_torch(
    engine: Engine, loaded: LoadedModel, onnx_path: Path, reference_logits: np.ndarray, *, runtime: str
) -> None:
    """Check ``engine`` (on the export ``onnx_path``) against torch's logits on the probe batch; record the pass.

    The record (:mod:`.onnx_check`, one per runtime) spares the next open the check and torch.

    Raises:
        ModelError: the probabilities differ from torch's by more than :data:`TOLERANCE`.
    """
    from megaclassifier.engines.torch_engine import probe_input

    name, instead = _RUNTIME_NAMES[runtime]
    got = engine.predict(probe_input(engine.image_size, profile=loaded.preprocessing).numpy())
    diff = float(np.abs(got - softmax(reference_logits)).max())
    if not diff <= TOLERANCE:
        raise ModelError(
            f"{loaded.path}: {name}'s probabilities differ from torch's by {diff:.2g} on a test batch "
            f"(delete {onnx_path} to re-export, or use --backend {instead})"
        )
    logger.debug("%s agrees with torch within %.2g", name, diff)
    onnx_check.record(
        onnx_path,
        file_sha256(loaded.path),
        image_size=engine.image_size,
        num_classes=engine.num_classes,
        arch=loaded.arch,
        difference=diff,
        runtime=runtime,
    )


def proven_export(
    model_path: Path,
    *,
    image_sizes: Callable[[str | None], int],
    num_classes: int | None,
    runtime: str = "onnxruntime",
) -> tuple[Path, onnx_check.Proof] | None:
    """A cached export of ``model_path`` whose check with ``runtime`` passed before (:mod:`.onnx_check`), else None.

    Args:
        model_path: the model file.
        image_sizes: the input side for a model of this architecture (``--image-size``, else its default).
        num_classes: when given, the model must have this many outputs.
        runtime: ``onnxruntime`` or ``openvino`` (each has its own proof).

    Returns:
        The export and its proof; the engine is opened from them by the caller
        (:func:`open_proven_onnx`, or :class:`~.openvino_engine.OpenVinoEngine`).

    Raises:
        ModelError: the proven model has another number of outputs than ``num_classes``.
    """
    digest = file_sha256(model_path)
    for folder in [p.parent for p in _candidates(model_path, "export.onnx")]:
        for onnx_path in sorted(folder.glob(f"{model_path.name}.{digest[:16]}.*px.onnx")):
            proof = onnx_check.proven(onnx_path, digest, runtime)
            if proof is None or onnx_path.name != onnx_cache_name(model_path, image_sizes(proof.arch), digest):
                continue
            if num_classes is not None and proof.num_classes != num_classes:
                raise ModelError(f"{model_path}: the model has {proof.num_classes} outputs, expected {num_classes}")
            logger.debug(
                "%s check of %s passed before (within %.2g); not run again", runtime, onnx_path, proof.difference
            )
            return onnx_path, proof
    return None


def open_proven_onnx(
    model_path: Path, *, device: str, image_sizes: Callable[[str | None], int], num_classes: int | None
) -> Engine | None:
    """The ONNX Runtime engine straight from a cached export whose check passed before, else None."""
    found = proven_export(model_path, image_sizes=image_sizes, num_classes=num_classes)
    if found is None:
        return None
    onnx_path, proof = found
    return OnnxEngine(
        onnx_path,
        model_path=model_path,
        device=device,
        image_size=proof.image_size,
        num_classes=proof.num_classes,
        arch=proof.arch,
    )
