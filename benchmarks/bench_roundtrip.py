"""What the JPEG round trip of ``run``'s fast path costs: with it (the default) and ``--no-jpeg-roundtrip``.

    .venv/bin/python benchmarks/bench_roundtrip.py [--images 300] [--arch efficientnet-b3] [--image-size 300]
        [--sets cameratrap,lila31] [--rounds 2] [--num-workers 1]

On a workload replicated from the real test photos (threshold 0.15, square crops; ``_workload``)
with a seeded EfficientNet, in one run, so that the two sides share the machine's load:

* the decoding side alone, in this process (decode at a draft reduction, cut, resize; no model):
  crops/s with and without the round trip, and the milliseconds it adds per crop;
* ``run`` end to end (ONNX Runtime on the CPU), the two variants alternated ``--rounds`` times:
  the best crops/s of each and their ratio.

The load average (``os.getloadavg``) is printed before and after: the figures are only as steady
as the machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from _workload import build_workload, measure, test_sets
from bench_classify import make_model

THRESHOLD = 0.15


def decode_only(detections: Path, images: Path, image_size: int) -> dict[str, tuple[int, float]]:
    """Crops and seconds of the fast decoding side in this process, with and without the round trip."""
    from megaclassifier.crop.core import CutOptions
    from megaclassifier.crop.crop import plan_crops, resolve_detector
    from megaclassifier.formats.detections import load_detections
    from megaclassifier.run.prepare import PrepareOptions, prepare_image

    results = load_detections(detections)
    plans = [p for p in plan_crops(results, ".", threshold=THRESHOLD, detector=resolve_detector(results, None)) if p[1]]
    timings: dict[str, tuple[int, float]] = {}
    for name, roundtrip in (("round trip", True), ("raw pixels", False), ("round trip again", True)):
        cut = CutOptions(str(images), square_crops=True, min_side=image_size, jpeg_roundtrip=roundtrip)
        start = time.perf_counter()
        crops = sum(len(prepare_image(file, crops, PrepareOptions(cut, image_size)).crops) for file, crops in plans)
        timings[name] = (crops, time.perf_counter() - start)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--arch", default="efficientnet-b3")
    parser.add_argument("--image-size", type=int, default=300)
    parser.add_argument("--sets", default="cameratrap,lila31")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--num-workers", type=int, default=1)
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="bench_roundtrip_") as tmp:
        root = Path(tmp)
        model, categories = make_model(root, args.arch)
        sources = test_sets(args.sets) if args.sets else None
        detections, images = build_workload(root / "full", args.images, sources)

        timings = decode_only(detections, images, args.image_size)
        print(f"decoding side alone, in this process, {args.image_size} px:")
        for name, (crops, seconds) in timings.items():
            print(f"  {name:<18}{crops:>6} crops {seconds:>7.2f} s {crops / seconds:>8.1f} crops/s")
        crops = timings["raw pixels"][0]
        with_trip = min(timings["round trip"][1], timings["round trip again"][1])
        print(f"  the round trip adds {1000 * (with_trip - timings['raw pixels'][1]) / crops:.2f} ms a crop")

        best: dict[str, float] = {}
        variants = (("run (round trip, default)", []), ("run --no-jpeg-roundtrip", ["--no-jpeg-roundtrip"]))
        for round_ in range(args.rounds):
            for name, extra in variants:
                out = root / f"out_{round_}_{len(extra)}.json"
                command = [sys.executable, "-m", "megaclassifier", "-q", "run", str(detections), str(model),
                           "--images-dir", str(images), "--square-crops", "--threshold", str(THRESHOLD),
                           "--classifier-categories", str(categories), "--image-size", str(args.image_size),
                           "--backend", "onnxruntime", "--device", "cpu", "--num-workers", str(args.num_workers),
                           "--output-json", str(out), "--logdir", tmp, *extra]  # fmt: skip
                if round_ == 0 and not extra:
                    measure(command)  # the ONNX export, once, outside the timings
                seconds = measure(command).seconds
                best[name] = max(best.get(name, 0.0), crops / seconds)
        print(f"run end to end, {args.arch} at {args.image_size} px, ONNX Runtime, best of {args.rounds}:")
        for name, rate in best.items():
            print(f"  {name:<30}{rate:>8.2f} crops/s")
        default, raw = best["run (round trip, default)"], best["run --no-jpeg-roundtrip"]
        print(f"  the round trip costs {100 * (1 - default / raw):.1f} % of run's speed")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
