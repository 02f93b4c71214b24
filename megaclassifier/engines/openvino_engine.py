"""The OpenVINO engine (``--backend openvino``): Intel's CPU runtime, an optional extra.

``pip install megaclassifier[openvino]`` installs it. OpenVINO reads the same
cached ONNX export as ONNX Runtime (:func:`~megaclassifier.engines.onnx_engine.cached_onnx`),
and compiles it for the CPU at fp32 (``INFERENCE_PRECISION_HINT f32``: on CPUs
with bf16 instructions OpenVINO would otherwise choose bf16). Its compiled model
is cached by the model's identity too, in a folder beside the export::

    model.pt.3f2a9c0e1d4b5a67.300px.onnx
    model.pt.3f2a9c0e1d4b5a67.300px.openvino/     (OpenVINO's CACHE_DIR: the compiled blob)

so a second start imports the compiled model instead of compiling it again.
When the engine first opens, its probabilities on the probe batch are compared
with torch's, within the same 1e-4 as ONNX Runtime's; a passed check is
recorded beside the export (``<export>.onnx.openvino-check.json``,
:mod:`~megaclassifier.engines.onnx_check`) and later starts skip it, and torch.

``--backend auto`` does not choose OpenVINO: on the machine measured
(AMD EPYC, 2 cores, AVX-512) it was not faster than ONNX Runtime at fp32 on
EfficientNet-B3 (20 against 24 crops/s at load 2-3, equal within noise at load
3-4; ``benchmarks/bench_run.py``, docs/performance.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np

from megaclassifier.engines.base import Engine, check_batch, softmax
from megaclassifier.errors import MegaClassifierError, ModelError, first_line
from megaclassifier.hardware import physical_cpu_count
from megaclassifier.models.loading import LoadedModel
from megaclassifier.preprocess import REFERENCE, Preprocessing

logger = logging.getLogger(__name__)

#: The message when the extra is missing.
NOT_INSTALLED = "--backend openvino needs the openvino package: pip install 'megaclassifier[openvino]'"


def import_openvino() -> ModuleType:
    """The ``openvino`` module.

    Raises:
        MegaClassifierError: it is not installed (one line saying how to install it).
    """
    try:
        import openvino
    except ImportError:
        raise MegaClassifierError(NOT_INSTALLED) from None
    return openvino


def check_openvino(device: str) -> None:
    """Fail early, before any model loads, where ``--backend openvino`` cannot run.

    Raises:
        MegaClassifierError: OpenVINO is not installed, or ``device`` is not the CPU.
    """
    if device != "cpu":
        raise MegaClassifierError(f"--backend openvino runs on the CPU only, not {device}; use --device cpu")
    import_openvino()


def compiled_cache_dir(onnx_path: Path) -> Path:
    """The folder of OpenVINO's compiled model of an ONNX export (named by the same identity)."""
    return onnx_path.with_suffix(".openvino")


class OpenVinoEngine(Engine):
    """Runs an ONNX export of a model with OpenVINO on the CPU, fp32."""

    backend = "openvino"
    precision = "fp32"

    def __init__(
        self,
        onnx_path: Path,
        *,
        model_path: Path,
        image_size: int,
        num_classes: int,
        arch: str | None,
        threads: int | None = None,
        preprocessing: Preprocessing = REFERENCE,
    ) -> None:
        ov = import_openvino()
        self.onnx_path = onnx_path
        self.model_path = model_path
        self.device = "cpu"
        self.image_size = image_size
        self.num_classes = num_classes
        self.arch = arch
        self.preprocessing = preprocessing
        self.cache_dir = compiled_cache_dir(onnx_path)
        core = ov.Core()
        config: dict[str, object] = {
            "INFERENCE_PRECISION_HINT": "f32",
            "INFERENCE_NUM_THREADS": threads or physical_cpu_count(),
            "PERFORMANCE_HINT": "LATENCY",
        }
        try:
            self.cache_dir.mkdir(exist_ok=True)
            config["CACHE_DIR"] = str(self.cache_dir)
        except OSError as e:  # a read-only cache: compile each time
            logger.debug("cannot cache OpenVINO's compiled model in %s: %s", self.cache_dir, e)
        try:
            self._compiled = core.compile_model(str(onnx_path), "CPU", config)
        except Exception as e:  # a damaged cache file, say
            raise ModelError(f"{onnx_path}: OpenVINO cannot load it ({first_line(e)})") from None
        self._request = self._compiled.create_infer_request()

    def logits(self, batch: np.ndarray) -> np.ndarray:
        """The model's raw output, float32 (N, C)."""
        x = check_batch(batch, self.image_size, self.preprocessing)
        out = np.array(self._request.infer([x])[0], dtype=np.float32)
        if out.shape != (x.shape[0], self.num_classes):
            raise ModelError(f"{self.onnx_path}: unexpected output shape {out.shape} for a batch of {x.shape[0]}")
        return out

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Softmax probabilities, float32 (N, C)."""
        if len(batch) == 0:
            return np.zeros((0, self.num_classes), np.float32)
        return softmax(self.logits(batch))

    def close(self) -> None:
        self._request = None
        self._compiled = None


def open_openvino_engine(
    loaded: LoadedModel, *, image_size: int, num_classes: int, reference_logits: np.ndarray
) -> OpenVinoEngine:
    """Export (or reuse) ``loaded`` as ONNX, compile it with OpenVINO (or reuse the compiled model), check it.

    Raises:
        MegaClassifierError: OpenVINO is not installed.
        ModelError: export fails, or OpenVINO's probabilities differ from torch's by more than 1e-4.
    """
    from megaclassifier.engines.onnx_engine import cached_onnx, check_against_torch

    path = cached_onnx(loaded, image_size)
    engine = OpenVinoEngine(
        path,
        model_path=loaded.path,
        image_size=image_size,
        num_classes=num_classes,
        arch=loaded.arch,
        preprocessing=loaded.preprocessing,
    )
    check_against_torch(engine, loaded, path, reference_logits, runtime="openvino")
    return engine


def open_proven_openvino(
    model_path: Path, *, image_sizes: Callable[[str | None], int], num_classes: int | None
) -> Engine | None:
    """The OpenVINO engine straight from a cached export whose OpenVINO check passed before, else None."""
    from megaclassifier.engines.onnx_engine import proven_export

    found = proven_export(model_path, image_sizes=image_sizes, num_classes=num_classes, runtime="openvino")
    if found is None:
        return None
    onnx_path, proof = found
    return OpenVinoEngine(
        onnx_path, model_path=model_path, image_size=proof.image_size, num_classes=proof.num_classes, arch=proof.arch
    )
