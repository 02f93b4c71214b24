"""``open_engine``: model name or path in, a ready :class:`~megaclassifier.engines.base.Engine` out."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path

from megaclassifier.constants import BACKENDS, DEFAULT_IMAGE_SIZE, EFFICIENTNET_NATIVE_SIZE
from megaclassifier.engines.base import Engine
from megaclassifier.errors import MegaClassifierError, ModelError
from megaclassifier.hardware import check_precision, resolve_device
from megaclassifier.models.loading import load_model
from megaclassifier.models.registry import KnownModel
from megaclassifier.models.resolved import ResolvedModel, resolve

logger = logging.getLogger(__name__)


def choose_backend(backend: str, device: str, precision: str) -> str:
    """The backend to use: ``auto`` is ONNX Runtime for fp32 on the CPU, torch otherwise.

    ``auto`` never picks OpenVINO: on the CPU measured it was not faster than ONNX Runtime
    (:mod:`.openvino_engine`).

    Raises:
        MegaClassifierError: an impossible combination.
    """
    if backend not in BACKENDS:
        raise MegaClassifierError(f"--backend {backend}: use one of {', '.join(BACKENDS)}")
    if backend in ("onnxruntime", "openvino") and precision != "fp32":
        raise MegaClassifierError(f"--backend {backend} runs fp32 only; use --backend torch for {precision}")
    if backend != "auto":
        return backend
    if device == "cpu" and precision == "fp32":
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            logger.info("onnxruntime is not installed; running with torch")
            return "torch"
        return "onnxruntime"
    return "torch"


def open_engine(
    model: str | Path | ResolvedModel,
    *,
    backend: str = "auto",
    device: str = "auto",
    precision: str = "fp32",
    arch: str | None = None,
    image_size: int | None = None,
    num_classes: int | None = None,
    features: bool = False,
) -> Engine:
    """Load a classifier and make it ready to run.

    Args:
        model: a TorchScript file, an EfficientNet checkpoint, a SpeciesNet release folder, a
            downloaded model's name (``megaclassifier-v0.1``), or one of these already resolved
            (:func:`~megaclassifier.models.resolved.resolve`).
        backend: ``auto`` (ONNX Runtime for fp32 on the CPU, else torch), ``torch``, ``onnxruntime`` or
            ``openvino`` (the optional extra; fp32 on the CPU).
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``N``.
        precision: ``fp32``, ``fp16`` (CUDA only) or ``bf16``.
        arch: the EfficientNet variant of a checkpoint; inferred from its weights when None.
        image_size: input side in pixels; default the architecture's native size, else 224.
        num_classes: when given, the model must have this many outputs.
        features: the engine is for :meth:`Engine.features`: a named model opens its
            checkpoint and the backend is torch.

    Raises:
        ModelError: the model cannot be loaded or has the wrong number of outputs; one line naming the file.
        MegaClassifierError: the device, precision or backend cannot be used here.
    """
    from megaclassifier.engines.onnx_engine import open_onnx_engine

    resolved = resolve(model, role="checkpoint" if features else "model")
    path, known = resolved.path, resolved.known
    resolved_device = resolve_device(device)
    check_precision(precision, resolved_device)
    chosen = "torch" if features and backend == "auto" else choose_backend(backend, resolved_device, precision)
    if features and chosen != "torch":
        raise MegaClassifierError("features need the torch backend")
    if chosen == "openvino":
        from megaclassifier.engines.openvino_engine import check_openvino

        check_openvino(resolved_device)  # not installed, or not the CPU: say so before the model loads
    if chosen in ("onnxruntime", "openvino") and resolved.release is None:  # a passed check is not run again
        sizes = functools.partial(_image_size, image_size, model=resolved.source, known=known)
        proven = _open_proven(chosen, path, resolved_device, sizes, num_classes)
        if proven is not None:
            return proven
    from megaclassifier.engines.torch_engine import TorchEngine, run_probe

    loaded = load_model(path, arch=arch, release=resolved.release)
    fixed = loaded.preprocessing.image_size
    size = _image_size(image_size, loaded.arch, model=resolved.source, known=known, fixed=fixed, kind=loaded.kind)
    logits = run_probe(loaded.module, path, size, loaded.preprocessing)
    width = int(logits.shape[1])
    if num_classes is not None and width != num_classes:
        raise ModelError(f"{path}: the model has {width} outputs, expected {num_classes}")
    if chosen == "openvino":
        from megaclassifier.engines.openvino_engine import open_openvino_engine

        return open_openvino_engine(loaded, image_size=size, num_classes=width, reference_logits=logits)
    if chosen == "onnxruntime":
        try:
            return open_onnx_engine(
                loaded, device=resolved_device, image_size=size, num_classes=width, reference_logits=logits
            )
        except ModelError as e:
            if backend != "auto":
                raise
            logger.warning("%s; running with torch instead", e)
    return TorchEngine(loaded, device=resolved_device, precision=precision, image_size=size, num_classes=width)


def _open_proven(
    runtime: str, path: Path, device: str, sizes: Callable[[str | None], int], num_classes: int | None
) -> Engine | None:
    """The ``runtime`` engine from a cached export whose check passed before (not run again), else None."""
    if runtime == "openvino":
        from megaclassifier.engines.openvino_engine import open_proven_openvino

        return open_proven_openvino(path, image_sizes=sizes, num_classes=num_classes)
    from megaclassifier.engines.onnx_engine import open_proven_onnx

    return open_proven_onnx(path, device=device, image_sizes=sizes, num_classes=num_classes)


def _image_size(
    image_size: int | None,
    arch: str | None,
    *,
    model: str | Path,
    known: KnownModel | None,
    fixed: int | None = None,
    kind: str = "",
) -> int:
    if fixed is not None:  # the input side is part of the model (a SpeciesNet release)
        if image_size is not None and image_size != fixed:
            raise MegaClassifierError(f"--image-size does not apply to {model}: its {kind} input is {fixed} px")
        logger.info("image size %d px (fixed by %s)", fixed, kind)
        return fixed
    if image_size is not None:
        if image_size < 1:
            raise MegaClassifierError(f"--image-size {image_size}: must be a positive number of pixels")
        logger.info("image size %d px (as given)", image_size)
        return image_size
    if arch is not None and arch in EFFICIENTNET_NATIVE_SIZE:
        size = EFFICIENTNET_NATIVE_SIZE[arch]
        logger.info("image size %d px (native size of %s; set --image-size to change)", size, arch)
        return size
    if known is not None:
        logger.info("image size %d px (the size %s was trained at)", known.image_size, known.name)
        return known.image_size
    logger.warning(
        "image size %d px (architecture not recognised; the reference default; set --image-size if the model "
        "was trained at another size)",
        DEFAULT_IMAGE_SIZE,
    )
    return DEFAULT_IMAGE_SIZE
