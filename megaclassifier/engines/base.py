"""The engine interface: preprocessed batches in, softmax probabilities out.

An engine holds one loaded classifier on one device::

    engine = open_engine("megaclassifier-v0.1")
    probs = engine.predict(batch)   # (N, 3, S, S) float32 -> (N, C) float32, rows sum to 1

Batches are what :func:`megaclassifier.classify.preprocess.preprocess_image`
makes, stacked: ImageNet-normalised RGB at ``engine.image_size``.
"""

from __future__ import annotations

import abc
from pathlib import Path

import numpy as np

from megaclassifier.errors import ModelError


class Engine(abc.ABC):
    """A classifier ready to run.

    Attributes:
        backend: ``torch`` or ``onnxruntime``.
        device: ``cpu`` or ``cuda:N``.
        precision: ``fp32``, ``fp16`` or ``bf16``.
        image_size: the side S of the square inputs.
        num_classes: the width C of the output.
        arch: the EfficientNet variant, or None when not recognised.
        model_path: the model file.
    """

    backend: str
    device: str
    precision: str
    image_size: int
    num_classes: int
    arch: str | None
    model_path: Path

    @abc.abstractmethod
    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Softmax probabilities, float32 (N, C), of a float32 (N, 3, S, S) batch."""

    @property
    def feature_size(self) -> int | None:
        """Length of :meth:`features` vectors, or None when this engine has none."""
        return None

    def features(self, batch: np.ndarray) -> np.ndarray:
        """Pooled final features, float32 (N, F), of a float32 (N, 3, S, S) batch.

        Raises:
            ModelError: this engine cannot give features.
        """
        raise ModelError(f"{self.model_path}: the {self.backend} engine gives no features; use the torch backend")

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the model."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def describe(self) -> str:
        """One line: model, architecture, size, backend, device, precision."""
        arch = f"{self.arch}, " if self.arch else ""
        return (
            f"{self.model_path.name} ({arch}{self.num_classes} classes) at {self.image_size} px "
            f"on {self.device} with {self.backend} {self.precision}"
        )


def check_batch(batch: np.ndarray, image_size: int) -> np.ndarray:
    """Return ``batch`` as a C-contiguous float32 (N, 3, S, S) array.

    Raises:
        ValueError: wrong shape.
    """
    array = np.ascontiguousarray(batch, dtype=np.float32)
    if array.ndim != 4 or array.shape[1:] != (3, image_size, image_size):
        raise ValueError(f"expected a (N, 3, {image_size}, {image_size}) batch, got shape {array.shape}")
    return array


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float32, as ``torch.softmax(x, dim=1)``."""
    x = np.asarray(logits, dtype=np.float32)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)
