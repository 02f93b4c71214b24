"""Reading crops in batches with a torch DataLoader and worker processes.

Each worker decodes and preprocesses crops; a crop that cannot be read comes
back as a failure for its own index, never as some other image. Batches keep
crop order. Memory stays flat: the crop list is one packed buffer shared with
the workers, and at most ``2 * num_workers`` batches are in flight. The
workers die with their parent and leave Ctrl-C to it
(:func:`~megaclassifier.workers.worker_setup`).
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from megaclassifier import platform
from megaclassifier.classify.discovery import CropList
from megaclassifier.errors import MegaClassifierError
from megaclassifier.hardware import available_cpus, physical_cpu_count
from megaclassifier.preprocess import REFERENCE, Preprocessing, load_crop, load_crop_file
from megaclassifier.workers import sigint_held, worker_setup

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

#: Crops per batch (the reference's default is 1, which is slow everywhere).


def default_num_workers(device: str | None = None) -> int:
    """Worker processes by default for an engine on ``device`` (``cpu`` or ``cuda:N``).

    On a GPU (or when ``device`` is None), the reference's 8, or fewer when fewer CPUs are available. On the
    CPU, inference already uses one thread per physical core, so workers only
    get the CPUs left over (hyper-threads), at most 2: on 2 cores, workers
    slow EfficientNet-B3 down from 27 to 24 crops/s.
    """
    if device is None or device.startswith("cuda"):
        return min(8, available_cpus())
    return max(0, min(2, available_cpus() - physical_cpu_count()))


@dataclass
class Batch:
    """A batch from the loader.

    Attributes:
        indices: crop indices of the rows of ``images``, in order.
        images: the model's float32 input (N, 3, S, S), or (N, S, S, 3) for SpeciesNet; None when
            every crop of the batch failed.
        failures: (crop index, reason) of the crops that could not be read.
    """

    indices: list[int]
    images: torch.Tensor | None
    failures: list[tuple[int, str]] = field(default_factory=list)


class CropDataset:
    """Map-style dataset: index -> (index, preprocessed crop or None, failure reason or None)."""

    def __init__(self, crops: CropList, image_size: int, preprocessing: Preprocessing = REFERENCE) -> None:
        self.crops = crops
        self.image_size = image_size
        self.preprocessing = preprocessing

    def __len__(self) -> int:
        return len(self.crops)

    def _read(self, index: int) -> np.ndarray:
        path = self.crops.path(index)
        if self.preprocessing == REFERENCE:
            return load_crop(path, self.image_size)
        return load_crop_file(path, self.image_size, self.preprocessing)

    def __getitem__(self, index: int) -> tuple[int, np.ndarray | None, str | None]:
        try:
            return index, self._read(index), None
        except Exception as e:  # any decoding problem is this crop's own failure
            reason = " ".join(str(e).split()) or type(e).__name__
            return index, None, reason


def collate(samples: list[tuple[int, np.ndarray | None, str | None]]) -> Batch:
    """Stack the readable crops of a batch; keep the others as failures."""
    import torch

    ok = [(i, a) for i, a, _ in samples if a is not None]
    failures = [(i, reason or "unreadable") for i, a, reason in samples if a is None]
    images = torch.from_numpy(np.stack([a for _, a in ok])) if ok else None
    return Batch([i for i, _ in ok], images, failures)


def iter_batches(
    crops: CropList,
    *,
    image_size: int,
    batch_size: int,
    num_workers: int,
    preprocessing: Preprocessing = REFERENCE,
    indices: Sequence[int] | None = None,
) -> Iterator[Batch]:
    """Yield batches of preprocessed crops in crop order (only those of ``indices``, when given).

    Raises:
        MegaClassifierError: a worker process died (out of memory, say).
    """
    from torch.utils.data import DataLoader

    if batch_size < 1:
        raise MegaClassifierError(f"--batch-size {batch_size}: must be at least 1")
    if num_workers < 0:
        raise MegaClassifierError(f"--num-workers {num_workers}: must be 0 or more")
    loader: DataLoader[Batch] = DataLoader(
        CropDataset(crops, image_size, preprocessing),  # type: ignore[arg-type]
        batch_size=batch_size,
        shuffle=False,
        sampler=indices,
        num_workers=num_workers,
        collate_fn=collate,
        pin_memory=False,  # the engine stages batches in its own pinned buffer
        prefetch_factor=2 if num_workers > 0 else None,
        worker_init_fn=functools.partial(worker_setup, os.getpid()),
        multiprocessing_context=platform.worker_start_method() if num_workers > 0 else None,
    )
    with sigint_held():  # the workers start here
        iterator = iter(loader)
    while True:
        try:
            batch = next(iterator)
        except StopIteration:
            return
        except RuntimeError as e:
            if "DataLoader worker" in str(e):
                raise MegaClassifierError(f"a crop-reading worker died ({e}); try fewer --num-workers") from None
            raise
        yield batch
