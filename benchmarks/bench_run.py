"""Benchmark the chain (crop + classify + merge) against ``run``, end to end.

    .venv/bin/python benchmarks/bench_run.py [--boxes 400] [--arch efficientnet-b3] [--image-size 300]
        [--growth 10] [--backends torch,onnxruntime] [--skip-chain]

Builds a workload from the real test images replicated to about BOXES animal
boxes (threshold 0.15, square crops), with an EfficientNet of seeded weights
saved as a MegaClassifier-style checkpoint. Prints crops/s end to end and peak
memory for the chain (torch backend, as the reference) and ``run`` with each
backend; then ``run`` on a workload GROWTH times larger, to show memory stays flat.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from _workload import build_workload, measure
from bench_classify import make_model

THRESHOLD = 0.15


def boxes_per_image(detections: Path) -> float:
    md = json.loads(detections.read_text())
    images = [im for im in md["images"] if im.get("detections")]
    boxes = sum(1 for im in images for d in im["detections"] if d["category"] == "1" and d["conf"] >= THRESHOLD)
    return boxes / len(images)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--boxes", type=int, default=400)
    parser.add_argument("--arch", default="efficientnet-b3")
    parser.add_argument("--image-size", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--growth", type=int, default=10, help="0 to skip the memory-growth run")
    parser.add_argument("--backends", default="torch,onnxruntime")
    parser.add_argument("--skip-chain", action="store_true")
    args = parser.parse_args()

    megaclassifier = [sys.executable, "-m", "megaclassifier", "-q"]
    with tempfile.TemporaryDirectory(prefix="bench_run_") as tmp:
        root = Path(tmp)
        model, categories = make_model(root, args.arch)
        probe, _ = build_workload(root / "probe", 100)
        per_image = boxes_per_image(probe)
        n_images = max(1, round(args.boxes / per_image))
        detections, images = build_workload(root / "small", n_images)
        common = ["--image-size", str(args.image_size), "--batch-size", str(args.batch_size),
                  "--num-workers", str(args.num_workers), "--device", args.device]
        print(f"{args.arch} at {args.image_size} px, {n_images} images, device {args.device}, "
              f"batch {args.batch_size}, {args.num_workers} workers")
        print(f"{'pipeline':<28}{'crops':>7}{'seconds':>9}{'crops/s':>9}{'peak MiB':>10}")

        def report(name: str, crops: int, seconds: float, peak: float) -> None:
            print(f"{name:<28}{crops:>7}{seconds:>9.1f}{crops / seconds:>9.2f}{peak:>10.0f}", flush=True)

        if not args.skip_chain:
            crops_dir, csv = root / "crops", root / "probs.csv"
            steps = [
                ["crop", str(detections), str(crops_dir), "--images-dir", str(images), "--square-crops",
                 "--threshold", str(THRESHOLD), "--threads", str(max(1, args.num_workers)), "--logdir", tmp],
                ["classify", str(model), str(crops_dir), str(csv), "--detections-json", str(detections),
                 "--classifier-categories", str(categories), "--backend", "torch", *common],
                ["merge", str(csv), str(categories), "--output-json", str(root / "chain.json"),
                 "--classifier-name", "bench", "--detection-json", str(detections)],
            ]
            results = [measure(megaclassifier + s) for s in steps]
            crops = sum(1 for _ in crops_dir.rglob("*.jpg"))
            report("chain (crop+classify+merge)", crops, sum(r.seconds for r in results),
                   max(r.peak_rss_mib for r in results))
        for backend in args.backends.split(","):
            out = root / f"run_{backend}.json"
            m = measure(megaclassifier + [
                "run", str(detections), str(model), "--images-dir", str(images), "--square-crops",
                "--threshold", str(THRESHOLD), "--classifier-categories", str(categories), "--output-json",
                str(out), "--backend", backend, "--logdir", tmp, *common])
            crops = classified(out)
            report(f"run --backend {backend}", crops, m.seconds, m.peak_rss_mib)
        if args.growth:
            big, big_images = build_workload(root / "big", n_images * args.growth)
            backend = args.backends.split(",")[-1]
            out = root / "run_big.json"
            m = measure(megaclassifier + [
                "run", str(big), str(model), "--images-dir", str(big_images), "--square-crops",
                "--threshold", str(THRESHOLD), "--classifier-categories", str(categories), "--output-json",
                str(out), "--backend", backend, "--logdir", tmp, *common])
            report(f"run {backend} x{args.growth} workload", classified(out), m.seconds, m.peak_rss_mib)


def classified(path: Path) -> int:
    data = json.loads(path.read_text())
    return sum(1 for im in data["images"] for d in im.get("detections") or [] if "classifications" in d)


if __name__ == "__main__":
    main()
