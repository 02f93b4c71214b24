"""Crops from ``run``'s decoding processes to the main process through shared memory, not pickles.

A worker writes an image's crops, stacked, into one new shared-memory block and
hands back only the block's name (:func:`pack`); the main process copies them
out and removes the block (:func:`unpack`). Measured on the 2-core Xeon with one
worker, 8 crops of 300 px per image: 0.09-0.12 ms of the main process's time per
crop against 0.20 ms for unpickling them, and twice the crops/s through the
channel (``benchmarks/bench_shm.py``).

Python before 3.13 registers every block with the resource tracker when it is
created or attached, and unregisters it on ``unlink``: the worker unregisters each
block it hands on, so the tracker neither warns about nor removes it.

That hand-over needs POSIX: there a block lives until it is unlinked. On Windows
a block dies with the last handle to it, which the worker would close before the
main process opens it, and there is no resource tracker; so there (and whenever
``MEGACLASSIFIER_PORTABLE=1``) :func:`pack` leaves the crops in the result, which
the worker pool pickles through its pipe
(:func:`megaclassifier.platform.shared_memory_handover`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from multiprocessing import shared_memory

import numpy as np

from megaclassifier import platform
from megaclassifier.crop.core import CutImage
from megaclassifier.workers import sigint_held


@dataclass(frozen=True)
class Packed:
    """An image's result without its pixels, and where they are: a block of ``count`` arrays of ``shape``."""

    image: CutImage[np.ndarray]
    block: str | None
    shape: tuple[int, ...]
    dtype: str


def pack(image: CutImage[np.ndarray]) -> Packed:
    """Move ``image``'s crops into a new shared-memory block (in the worker; POSIX, else left in place)."""
    arrays = [a for _, a in image.crops if a is not None]
    if not arrays or len(arrays) != len(image.crops) or not platform.shared_memory_handover():
        return Packed(image, None, (), "uint8")  # nothing to move, or crops without pixels: pickled as they are
    bare = replace(image, crops=[(p, None) for p, _ in image.crops])
    shape = (len(arrays), *arrays[0].shape)
    block = shared_memory.SharedMemory(create=True, size=max(1, int(np.prod(shape)) * arrays[0].itemsize))
    try:
        np.stack(arrays, out=np.ndarray(shape, arrays[0].dtype, buffer=block.buf))
        platform.untrack_shared_memory(block._name)  # type: ignore[attr-defined]  # the main process owns it now
        return Packed(bare, block.name, shape, arrays[0].dtype.str)
    finally:
        block.close()


def unpack(packed: Packed) -> CutImage[np.ndarray]:
    """The image with its crops copied out of the block, which is removed (in the main process)."""
    if packed.block is None:
        return packed.image
    # Ctrl-C is held back meanwhile: between attaching (registered with the tracker) and the end of
    # unlink (removed, then unregistered) an interrupt would leave the tracker a block to warn about
    with sigint_held():
        block = shared_memory.SharedMemory(name=packed.block)
        try:
            pixels = np.ndarray(packed.shape, np.dtype(packed.dtype), buffer=block.buf).copy()
        finally:
            block.close()
            block.unlink()  # also unregisters it from the tracker, which attaching registered it with
    arrays = iter(pixels)
    crops = [(p, next(arrays) if a is None else a) for p, a in packed.image.crops]
    return replace(packed.image, crops=crops)
