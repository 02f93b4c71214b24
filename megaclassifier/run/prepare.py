"""``run``'s decoding side: images in, uint8 model inputs out, on worker processes.

Each worker cuts an image's boxes with the crop core
(:func:`~megaclassifier.crop.cut.cut_image`: the exact ``crop`` geometry,
EXIF, the chain's JPEG quality-75 round trip in memory, ``--save-crops``) and
resizes and centre-crops each crop as ``classify`` does, handing back uint8
pixels (a quarter of the bytes of the normalised array). At most a few images
per worker are in flight (:func:`~megaclassifier.parallel.bounded_map`), so
memory stays flat. The workers die with ``run`` and leave Ctrl-C to it
(:func:`~megaclassifier.workers.worker_setup`).
"""

from __future__ import annotations

import functools
import multiprocessing
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from megaclassifier.crop.core import CutImage, CutOptions, PlannedCrop
from megaclassifier.crop.cut import cut_image
from megaclassifier.hardware import available_cpus
from megaclassifier.parallel import bounded_map
from megaclassifier.preprocess import REFERENCE, Preprocessing, to_pixels
from megaclassifier.run.shm import Packed, pack, unpack
from megaclassifier.workers import QuietStartPool, worker_setup

#: Images in flight per decoding process.
WINDOW_PER_WORKER = 3


@dataclass(frozen=True)
class PrepareOptions:
    """What a decoding worker needs: where the images are, how to cut, the model's input side and profile."""

    cut: CutOptions
    image_size: int
    preprocessing: Preprocessing = REFERENCE


_worker_options: PrepareOptions | None = None


def _init_worker(options: PrepareOptions, parent: int) -> None:
    global _worker_options
    worker_setup(parent)
    _worker_options = options


def _prepare_in_worker(file: str, crops: list[PlannedCrop]) -> Packed:
    if _worker_options is None:
        raise RuntimeError("decoding worker used before its initializer ran")
    return pack(prepare_image(file, crops, _worker_options))


def prepare_image(file: str, crops: Sequence[PlannedCrop], options: PrepareOptions) -> CutImage[np.ndarray]:
    """Decode one image and return its crops as the classifier's uint8 (S, S, 3) inputs."""
    convert = functools.partial(to_pixels, image_size=options.image_size, profile=options.preprocessing)
    return cut_image(file, crops, options.cut, convert)


def prepared_stream(
    plans: list[tuple[str, list[PlannedCrop]]], options: PrepareOptions, num_workers: int
) -> Iterator[CutImage[np.ndarray]]:
    """Prepare images in order on ``num_workers`` processes (0: here), a bounded number in flight."""
    if num_workers == 0:
        yield from (prepare_image(file, crops, options) for file, crops in plans)
        return
    pool = functools.partial(
        QuietStartPool,
        num_workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_worker,
        initargs=(options, os.getpid()),
    )
    packed = bounded_map(_prepare_in_worker, plans, pool=pool, window=num_workers * WINDOW_PER_WORKER)
    yield from map(unpack, packed)  # the crops come through shared memory (megaclassifier.run.shm)


def default_run_workers(device: str) -> int:
    """Decoding processes for ``run`` by default.

    On the CPU, one: it overlaps decoding with inference and leaves the cores to
    the model, which sets the pace there. On a GPU decoding sets the pace: one
    process per CPU but one (the main process feeds the GPU), at most 32.
    """
    if device == "cpu":
        return 1
    return max(1, min(32, available_cpus() - 1))
