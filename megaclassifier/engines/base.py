"""The engine interface: preprocessed batches in, softmax probabilities out.

An engine holds one loaded classifier on one device::

    engine = open_engine("megaclassifier-v0.1")
    probs = engine.predict(batch)   # (N, 3, S, S) float32 -> (N, C) float32, rows sum to 1

    pending = engine.submit(batch)  # starts the batch (on a GPU: returns at once)
    ...                             # prepare the next batch meanwhile
    probs = pending.result()

A batch is either what :func:`megaclassifier.preprocess.preprocess_image`
makes, stacked (ImageNet-normalised float32 (N, 3, S, S)), or the uint8 pixels
(N, S, S, 3) that :func:`~megaclassifier.preprocess.resize_and_crop`
makes, which the engine normalises with the same arithmetic (the torch engine
on its device, after a four-times-smaller upload). A model with another
:class:`~megaclassifier.preprocess.Preprocessing` profile (a SpeciesNet
release: NHWC float32 in [0, 1]) takes that input instead, or the same uint8
pixels, which the engine scales as the profile says.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TypeVar

import numpy as np

from megaclassifier.errors import ModelError
from megaclassifier.preprocess import REFERENCE, Preprocessing, input_shape, model_input

T = TypeVar("T")


class Pending:
    """A batch under way in an engine; :meth:`result` waits for it and gives its probabilities."""

    __slots__ = ("_fetch", "_value")

    def __init__(self, fetch: Callable[[], np.ndarray]) -> None:
        self._fetch: Callable[[], np.ndarray] | None = fetch
        self._value: np.ndarray | None = None

    @classmethod
    def ready(cls, value: np.ndarray) -> Pending:
        """A result that is already there."""
        pending = cls(lambda: value)
        pending._fetch, pending._value = None, value
        return pending

    def result(self) -> np.ndarray:
        """The float32 (N, C) probabilities (waiting for them the first time)."""
        if self._fetch is not None:
            self._value, self._fetch = self._fetch(), None
        assert self._value is not None
        return self._value


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
        preprocessing: the input the model wants.
    """

    backend: str
    device: str
    precision: str
    image_size: int
    num_classes: int
    arch: str | None
    model_path: Path
    preprocessing: Preprocessing = REFERENCE

    @abc.abstractmethod
    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Softmax probabilities, float32 (N, C), of a batch (see the module's docstring)."""

    def submit(self, batch: np.ndarray) -> Pending:
        """Start ``batch``; the probabilities come from the returned :class:`Pending`.

        Engines that can run asynchronously return before the work is done, so
        the caller can prepare the next batch meanwhile; this default runs it now.
        """
        return Pending.ready(self.predict(batch))

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


def pipelined(
    submit: Callable[[np.ndarray], Pending], batches: Iterable[tuple[T, np.ndarray]]
) -> Iterator[tuple[T, np.ndarray]]:
    """(tag, batch) in, (tag, probabilities) out, in order, with one batch in flight.

    Each batch is submitted before the previous one's result is read, so an
    asynchronous engine (torch on a GPU) works while the next batch is gathered.
    """
    previous: tuple[T, Pending] | None = None
    for tag, batch in batches:
        pending = submit(batch)
        if previous is not None:
            yield previous[0], previous[1].result()
        previous = (tag, pending)
    if previous is not None:
        yield previous[0], previous[1].result()


def is_pixel_batch(batch: np.ndarray, image_size: int, profile: Preprocessing = REFERENCE) -> bool:
    """Whether ``batch`` is uint8 pixels (N, S, S, 3) rather than the model's float32 input.

    The model's input is normalised (N, 3, S, S), or (N, S, S, 3) in [0, 1] for a
    channels-last profile (SpeciesNet).

    Raises:
        ValueError: it is neither.
    """
    shape = np.shape(batch)
    dtype = getattr(batch, "dtype", None)
    if dtype == np.uint8 and len(shape) == 4 and shape[1:] == (image_size, image_size, 3):
        return True
    wanted = input_shape(profile, 0, image_size)[1:]
    if dtype != np.uint8 and len(shape) == 4 and shape[1:] == wanted:
        return False
    raise ValueError(
        f"expected a float32 (N, {', '.join(map(str, wanted))}) or uint8 (N, {image_size}, {image_size}, 3) "
        f"batch, got {dtype} {shape}"
    )


def check_batch(batch: np.ndarray, image_size: int, profile: Preprocessing = REFERENCE) -> np.ndarray:
    """Return ``batch`` as the model's C-contiguous float32 input (pixels scaled as ``profile`` says).

    Raises:
        ValueError: wrong shape.
    """
    if is_pixel_batch(batch, image_size, profile):
        batch = model_input(batch, profile)
    return np.ascontiguousarray(batch, dtype=np.float32)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float32, as ``torch.softmax(x, dim=1)``."""
    x = np.asarray(logits, dtype=np.float32)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)
