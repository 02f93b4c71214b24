"""Crops from a decoding process to the main process: pickles against shared memory.

    .venv/bin/python benchmarks/bench_shm.py [--images 300] [--crops 8] [--image-size 300]

One worker process makes IMAGES results of CROPS uint8 crops each (no decoding:
the cost measured is the hand-over) and returns them pickled, or through
:mod:`megaclassifier.run.shm`. Prints crops/s through the channel and the main
process's CPU time per crop, each way, twice.
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from megaclassifier.crop.core import CutImage, PlannedCrop
from megaclassifier.run.shm import pack, unpack

_SIZE, _CROPS = 300, 8


def _init(size: int, crops: int) -> None:
    global _SIZE, _CROPS
    _SIZE, _CROPS = size, crops


def _make(i: int) -> CutImage[np.ndarray]:
    crops = [
        (
            PlannedCrop(j, (0.0, 0.0, 1.0, 1.0), f"{i}_{j}", Path(f"{i}_{j}.jpg")),
            np.full((_SIZE, _SIZE, 3), i % 251, np.uint8),
        )
        for j in range(_CROPS)
    ]
    return CutImage(f"{i}.jpg", planned=_CROPS, crops=crops)


def _pickled(i: int) -> CutImage[np.ndarray]:
    return _make(i)


def _shared(i: int) -> object:
    return pack(_make(i))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--crops", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=300)
    args = parser.parse_args()
    context = multiprocessing.get_context("spawn")
    for name in ("pickle", "shared memory", "pickle", "shared memory"):
        task = _pickled if name == "pickle" else _shared
        with ProcessPoolExecutor(
            1, mp_context=context, initializer=_init, initargs=(args.image_size, args.crops)
        ) as pool:
            for result in pool.map(task, range(2)):  # start-up
                if name != "pickle":
                    unpack(result)  # type: ignore[arg-type]
            wall, cpu, total = time.perf_counter(), time.process_time(), 0
            for result in pool.map(task, range(args.images)):
                image = result if name == "pickle" else unpack(result)  # type: ignore[arg-type]
                total += sum(int(a[0, 0, 0]) for _, a in image.crops if a is not None)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        crops = args.images * args.crops
        print(f"{name:<14} {crops / wall:>8,.0f} crops/s  main process {1000 * cpu / crops:.3f} ms/crop", flush=True)


if __name__ == "__main__":
    main()
