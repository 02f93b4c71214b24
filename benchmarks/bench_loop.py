"""``run``'s main loop alone, with a null engine: how many crops/s it can move (target: 20,000).

    .venv/bin/python benchmarks/bench_loop.py [--boxes 21000] [--classes 37] [--image-size 300]
        [--batch-size 128] [--mapping]

The real test images' detections (``_workload``), replicated to about BOXES animal
boxes, are planned as ``run`` plans them; each image then arrives "decoded" (one
shared uint8 crop per box, no pixel work) and goes through what the main process
does per crop: batching (``np.stack``), the engine (a null one that returns fixed
probabilities), the chain's float64 values, the target mapping (``--mapping``),
the ``classifications`` lists and the streamed merge. Prints crops/s and peak RSS
twice: with IMAGE_SIZE crops (the CPU decoder's uint8 crops, copied into the batch
on the host: memory-bound) and with 1-px crops (what the loop itself costs, as with
the GPU decoder, whose pixels never reach the host).
"""

from __future__ import annotations

import argparse
import math
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from _workload import build_workload

from megaclassifier.crop.core import CutImage
from megaclassifier.crop.crop import plan_crops, resolve_detector
from megaclassifier.engines import pipelined
from megaclassifier.engines.base import Pending
from megaclassifier.formats.detections import DetectionResults, load_detections
from megaclassifier.merge import merge_rows
from megaclassifier.run.classifier import Classifier
from megaclassifier.run.executors import stacked_batches
from megaclassifier.run.pipeline import RunSummary, classified_rows


class NullEngine:
    """No model: each batch's probabilities are fixed softmax rows, ready at once."""

    backend, device, precision = "null", "cpu", "fp32"

    def __init__(self, classes: int, image_size: int) -> None:
        rng = np.random.default_rng(0)
        self.rows = rng.dirichlet(np.ones(classes), 4096).astype(np.float32)
        self.image_size, self.num_classes = image_size, classes

    def submit(self, batch: np.ndarray) -> Pending:
        return Pending.ready(self.rows[: len(batch)])


class _Bar:
    total = 0

    def update(self, n: int) -> None:
        pass

    def refresh(self) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--boxes", type=int, default=21000)
    parser.add_argument("--classes", type=int, default=37)
    parser.add_argument("--image-size", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--mapping", action="store_true", help="sum the classes into 3 targets, as --target-mapping")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_loop_") as tmp:
        probe, _ = build_workload(Path(tmp) / "probe", 100)
        per_image = sum(len(c) for _, c in _plans(probe)) / 100
        detections, _ = build_workload(Path(tmp) / "full", max(1, math.ceil(args.boxes / per_image)))
        plans = _plans(detections)
        targets = " -> 3 targets" if args.mapping else ""
        print(f"null-engine loop: {args.classes} classes{targets}, batch {args.batch_size}")
        for size, what in ((args.image_size, "uint8 crops stacked on the host"), (1, "1-px crops: the loop alone")):
            crops, seconds = loop(load_detections(detections), plans, size, args)
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(
                f"  {what:<34} {size:>4} px: {crops} crops, {seconds:.2f} s, {crops / seconds:>8,.0f} crops/s, "
                f"peak {peak:.0f} MiB",
                flush=True,
            )


def loop(results: DetectionResults, plans: list, size: int, args: argparse.Namespace) -> tuple[int, float]:
    """Run the main loop on ``plans`` with ``size``-px crops; return (crops merged, seconds)."""
    rng = np.random.default_rng(0)  # distinct crops, more bytes than the caches hold, as decoded ones are
    pool = [rng.integers(0, 256, (size, size, 3), np.uint8) for _ in range(256)]
    engine = NullEngine(args.classes, size)
    names = [f"c{i}" for i in range(args.classes)]
    groups = [list(range(k, args.classes, 3)) for k in range(3)] if args.mapping else None
    classifier = Classifier(engine, names, ["a", "b", "c"] if groups else names, groups, "null")  # type: ignore[arg-type]
    images = (
        CutImage(file, planned=len(crops), crops=[(p, pool[(i + j) % len(pool)]) for j, p in enumerate(crops)])
        for i, (file, crops) in enumerate(plans)
    )
    summary = RunSummary()
    start = time.perf_counter()
    stacked = stacked_batches(images, args.batch_size, lambda image, ready: summary.crop.record(image))
    batches = pipelined(engine.submit, stacked)
    rows = classified_rows(batches, classifier, summary, (0.05, None), bar=_Bar(), csv=None)
    merged = merge_rows(results, rows, classifier_name="null", classification_categories=classifier.categories)
    return merged.detections_classified, time.perf_counter() - start


def _plans(detections: Path) -> list:
    results = load_detections(detections)
    return list(plan_crops(results, ".", threshold=0.15, detector=resolve_detector(results, None)))


if __name__ == "__main__":
    main()
