"""Remember what the ONNX check proved, so that a later start skips it (and torch).

:func:`~megaclassifier.engines.onnx_engine.open_onnx_engine` loads the model in
torch, runs it and the ONNX export on a probe batch and compares them: seconds
of start-up for an EfficientNet-B3 on the CPU, plus importing torch. When they
agree, :func:`record` writes beside the export a small proof::

    <export>.onnx.check.json  {"model_sha256", "onnx_sha256", "onnxruntime", "image_size", "num_classes", ...}

and :func:`proven` finds it again: same model file (SHA-256), same export
(SHA-256), same ONNX Runtime version. Then the engine opens straight from the
export; anything different (or a damaged proof) and the full check runs again.
OpenVINO's check of the same export (``--backend openvino``) is proven the same
way, in ``<export>.onnx.openvino-check.json`` with OpenVINO's version (``runtime="openvino"``).

A failed export is remembered the same way, so that it is not tried (and failed) on
every run: :func:`record_failure` writes, where the export would have gone::

    <export>.onnx.failed.json  {"model_sha256", "torch", "error"}

and :func:`failed_before` finds it again for the same model file (SHA-256) and the same
torch (the exporter); a new torch, or deleting the file, tries the export again.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from megaclassifier.formats.atomic import write_bytes_atomic

logger = logging.getLogger(__name__)

SUFFIX = ".check.json"
FAILED_SUFFIX = ".failed.json"


@dataclass(frozen=True)
class Proof:
    """A passed ONNX check: the export, and what the check learnt about the model."""

    onnx_path: Path
    image_size: int
    num_classes: int
    arch: str | None
    difference: float


def proof_path(onnx_path: Path, runtime: str = "onnxruntime") -> Path:
    prefix = "" if runtime == "onnxruntime" else f".{runtime}-"
    return onnx_path.with_name(onnx_path.name + (prefix + SUFFIX[1:] if prefix else SUFFIX))


def _version(runtime: str) -> str:
    if runtime == "openvino":
        import openvino

        return str(openvino.__version__)
    import onnxruntime as ort

    return str(ort.__version__)


def record(
    onnx_path: Path,
    model_sha256: str,
    *,
    image_size: int,
    num_classes: int,
    arch: str | None,
    difference: float,
    runtime: str = "onnxruntime",
) -> None:
    """Write the proof of a passed check beside ``onnx_path`` (quietly skipped where it cannot be written)."""
    from megaclassifier.formats.hashing import file_sha256

    proof = {
        "model_sha256": model_sha256,
        "onnx_sha256": file_sha256(onnx_path),
        runtime: _version(runtime),
        "image_size": image_size,
        "num_classes": num_classes,
        "arch": arch,
        "difference": difference,
    }
    try:
        write_bytes_atomic(proof_path(onnx_path, runtime), json.dumps(proof, indent=1).encode())
    except OSError as e:
        logger.debug("cannot record the ONNX check beside %s: %s", onnx_path, e)


def proven(onnx_path: Path, model_sha256: str, runtime: str = "onnxruntime") -> Proof | None:
    """The proof for this export of this model with ``runtime``, when one holds; else None."""
    from megaclassifier.formats.hashing import file_sha256

    path = proof_path(onnx_path, runtime)
    if not onnx_path.is_file() or not path.is_file():
        return None
    try:
        proof = json.loads(path.read_text(encoding="utf-8"))
        holds = (
            proof["model_sha256"] == model_sha256
            and proof[runtime] == _version(runtime)
            and proof["onnx_sha256"] == file_sha256(onnx_path)
        )
        if not holds:
            return None
        return Proof(
            onnx_path, int(proof["image_size"]), int(proof["num_classes"]), proof["arch"], float(proof["difference"])
        )
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as e:
        logger.debug("ignoring %s: %s", path, e)
        return None


def failure_path(onnx_path: Path) -> Path:
    return onnx_path.with_name(onnx_path.name + FAILED_SUFFIX)


def _torch_version() -> str:
    import torch

    return str(torch.__version__)


def record_failure(onnx_path: Path, model_sha256: str, error: str) -> Path | None:
    """Remember that exporting this model to ``onnx_path`` failed with ``error``; where, or None if not writable."""
    record = {"model_sha256": model_sha256, "torch": _torch_version(), "error": error}
    try:
        write_bytes_atomic(failure_path(onnx_path), json.dumps(record, indent=1).encode())
    except OSError as e:
        logger.debug("cannot record the failed ONNX export beside %s: %s", onnx_path, e)
        return None
    return failure_path(onnx_path)


def failed_before(onnx_path: Path, model_sha256: str) -> str | None:
    """The error of an earlier export of this model with this torch, when one is remembered; else None."""
    path = failure_path(onnx_path)
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        if record["model_sha256"] == model_sha256 and record["torch"] == _torch_version():
            return str(record["error"])
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as e:
        logger.debug("ignoring %s: %s", path, e)
    return None
