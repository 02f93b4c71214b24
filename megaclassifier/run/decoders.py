"""``run --decoder``: which code turns images into model inputs, and how they are stacked.

* ``cpu``: worker processes decode with Pillow (:mod:`megaclassifier.run.prepare`);
  in the fast mode at a JPEG draft reduction (:mod:`megaclassifier.crop.draft`),
  with ``--exact`` at full size; each crop through the chain's JPEG round trip (in both, unless
  ``--no-jpeg-roundtrip``).
* ``gpu``: torchvision's batched ``decode_jpeg`` on the engine's device
  (:mod:`megaclassifier.run.gpu_decode`); files it cannot take go to the CPU path.
* ``hybrid``: both at once, CPU workers taking the share of the photos that
  :func:`cpu_share` gives them, the rest decoded on the GPU.
* ``auto``: ``gpu`` when the model runs with torch on a CUDA device, else ``cpu``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from megaclassifier.crop.core import CutImage, PlannedCrop
from megaclassifier.errors import MegaClassifierError
from megaclassifier.run.prepare import PrepareOptions, prepared_stream

DECODERS = ("auto", "cpu", "gpu", "hybrid")

#: How many CPU decoding processes one GPU's decoder is worth (nvjpeg about 1,400 crops/s against
#: about 80 per core at draft 1/4 on the mixed workload of issue 10): sets ``hybrid``'s split.
GPU_WORKER_EQUIVALENT = 18


def resolve_decoder(decoder: str, *, exact: bool, backend: str, device: str) -> str:
    """The decoder to use: ``cpu``, ``gpu`` or ``hybrid``.

    Raises:
        MegaClassifierError: ``--exact`` with a GPU decoder, or an unknown name.
    """
    if decoder not in DECODERS:
        raise MegaClassifierError(f"unknown decoder {decoder!r} (choose from {', '.join(DECODERS)})")
    if exact:
        if decoder in ("gpu", "hybrid"):
            raise MegaClassifierError(f"--exact decodes with Pillow on the CPU; it cannot use --decoder {decoder}")
        return "cpu"
    if decoder == "auto":
        return "gpu" if backend == "torch" and device.startswith("cuda") else "cpu"
    return decoder


def decode_device(backend: str, device: str) -> str:
    """Where the GPU decoder puts its pixels: the torch engine's device, else the CPU."""
    return device if backend == "torch" else "cpu"


def cpu_share(workers: int) -> float:
    """The share of photos ``hybrid`` gives to ``workers`` CPU processes."""
    return workers / (workers + GPU_WORKER_EQUIVALENT) if workers > 0 else 0.0


def decoded_stream(
    plans: list[tuple[str, list[PlannedCrop]]],
    options: PrepareOptions,
    decoder: str,
    *,
    device: str,
    workers: int,
) -> Iterator[CutImage[Any]]:
    """Each image's crops as model inputs (uint8 (S, S, 3) arrays or tensors), in order."""
    if decoder == "cpu":
        return prepared_stream(plans, options, workers)
    from megaclassifier.run.gpu_decode import gpu_stream

    if decoder == "gpu":
        return gpu_stream(plans, options, device, readers=max(1, workers))
    on_cpu = split_plans(len(plans), cpu_share(workers))
    cpu_images = prepared_stream([p for p, c in zip(plans, on_cpu, strict=True) if c], options, workers)
    gpu_images = gpu_stream([p for p, c in zip(plans, on_cpu, strict=True) if not c], options, device, readers=2)
    return (next(cpu_images) if c else next(gpu_images) for c in on_cpu)


def split_plans(count: int, share: float) -> list[bool]:
    """For each of ``count`` images, whether it goes to the CPU: spread evenly, ``share`` of them."""
    return [int((i + 1) * share) > int(i * share) for i in range(count)]


def stack(arrays: Sequence[Any], device: str) -> Any:
    """One batch of model inputs: a numpy array, or a tensor on ``device`` when the pixels are there."""
    if all(isinstance(a, np.ndarray) for a in arrays):
        return np.stack(arrays)
    import torch

    tensors = [torch.as_tensor(a) for a in arrays]
    if device == "cpu":
        return torch.stack(tensors).numpy()
    return torch.stack([t.to(device, non_blocking=True) for t in tensors])


class BatchStacker:
    """Stacks host crops into a ring of reused buffers: no fresh pages to fault in per batch.

    Measured on the 2-core Xeon (128 crops of 300 px a batch): 11,000 crops/s against
    6,000 for ``np.stack`` into a new array. Safe because every engine is done with a
    batch's pixels when its ``submit`` returns (it has normalised or uploaded them), and
    at most one batch is in flight while the next is gathered; the ring holds three.
    """

    RING = 3

    def __init__(self, device: str) -> None:
        self.device = device
        self._buffers: list[np.ndarray | None] = [None] * self.RING
        self._next = 0

    def __call__(self, arrays: Sequence[Any]) -> Any:
        """One batch of model inputs (see :func:`stack`)."""
        if not all(isinstance(a, np.ndarray) for a in arrays):
            return stack(arrays, self.device)
        shape, dtype = (len(arrays), *arrays[0].shape), arrays[0].dtype
        slot = self._next
        self._next = (slot + 1) % self.RING
        buffer = self._buffers[slot]
        if buffer is None or buffer.dtype != dtype or buffer.shape[1:] != shape[1:] or len(buffer) < shape[0]:
            buffer = self._buffers[slot] = np.empty(shape, dtype)
        return np.stack(arrays, out=buffer[: shape[0]])
