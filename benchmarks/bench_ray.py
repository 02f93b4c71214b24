"""Benchmark ``run --ray`` on a local Ray cluster against plain ``run``, and the rates of a scaling model.

    .venv/bin/python benchmarks/bench_ray.py [--boxes 600] [--arch efficientnet-b0] [--image-size 224]

On the real test images replicated to about BOXES animal boxes (threshold 0.15, square
crops) with a seeded EfficientNet checkpoint (ONNX Runtime on the CPU), prints:

* plain ``run`` and ``run --ray`` (the CLI starts a local cluster on all CPUs; its start-up
  is in the time) end to end: crops/s, and the overhead of Ray in seconds;
* the per-node rates a scaling model needs, measured on this machine: decoding and cutting
  on one core (crops/s), the engine alone on all cores (crops/s), and the driver's
  merge side alone (unpickle-free: progress file, classifications, merge; crops/s);
* the projection for N such nodes: N times the measured Ray throughput of one node after
  start-up (from two workload sizes: the fixed start-up cost drops out), capped
  by the driver's measured rate. Projected, not measured: this machine is one node.

Peak memory is the driver's own (Ray's workers are other processes).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _workload import build_workload, measure
from bench_classify import make_model
from bench_run import THRESHOLD, boxes_per_image, classified


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--boxes", type=int, default=600)
    parser.add_argument("--arch", default="efficientnet-b0")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_ray_") as tmp:
        root = Path(tmp)
        model, categories = make_model(root, args.arch)
        probe, _ = build_workload(root / "probe", 100)
        n_images = max(1, round(args.boxes / boxes_per_image(probe)))
        detections, images = build_workload(root / "full", n_images)
        first = build_workload(root / "first", 4)

        def run(workload: tuple[Path, Path], name: str, *extra: str) -> tuple[int, float, float]:
            out = root / f"{name}.json"
            command = [sys.executable, "-m", "megaclassifier", "-q", "run", str(workload[0]), str(model)]
            command += ["--images-dir", str(workload[1]), "--square-crops", "--threshold", str(THRESHOLD)]
            command += ["--classifier-categories", str(categories), "--output-json", str(out), "--logdir", tmp]
            command += ["--image-size", str(args.image_size), "--batch-size", str(args.batch_size)]
            m = measure([*command, "--backend", "onnxruntime", *extra])
            return classified(out), m.seconds, m.peak_rss_mib

        run(first, "export")  # the one-time ONNX export, cached beside the model
        print(f"{args.arch} at {args.image_size} px, {n_images} images, ONNX Runtime on the CPU")
        print(f"{'pipeline':<44}{'crops':>7}{'seconds':>9}{'crops/s':>9}{'peak MiB':>10}")
        small = build_workload(root / "small", max(4, n_images // 3))
        measured = {
            "run": run((detections, images), "plain"),
            "run --ray (local cluster, all CPUs)": run((detections, images), "ray", "--ray"),
            "run --ray, 1/3 of the images": run(small, "ray_small", "--ray"),
        }
        for name, (crops, seconds, peak) in measured.items():
            print(f"{name:<44}{crops:>7}{seconds:>9.1f}{crops / seconds:>9.2f}{peak:>10.0f}", flush=True)
        plain, ray, ray_small = measured.values()
        marginal = (ray[0] - ray_small[0]) / (ray[1] - ray_small[1])
        fixed = ray[1] - ray[0] / marginal
        print(f"Ray overhead: {ray[1] - plain[1]:+.1f} s on this workload ({ray[1] / plain[1]:.2f}x the time of run)")
        print(f"  = {fixed:.1f} s fixed (cluster start, actor start-up) + {marginal:.2f} crops/s after it")
        rates = node_rates(detections, images, model, categories, args.image_size, args.batch_size)
        rates["ray_node"] = marginal
        scaling(rates)


def node_rates(
    detections: Path, images: Path, model: Path, categories: Path, image_size: int, batch_size: int
) -> dict[str, float]:
    """Measured here: decoding on one core, the engine on all cores, the driver's merge side."""
    from megaclassifier.crop.core import CutOptions
    from megaclassifier.crop.crop import plan_crops, resolve_detector
    from megaclassifier.engines import open_engine
    from megaclassifier.formats.detections import load_detections
    from megaclassifier.run.prepare import PrepareOptions, prepare_image

    results = load_detections(detections)
    plans = list(plan_crops(results, ".", threshold=THRESHOLD, detector=resolve_detector(results, None)))
    options = PrepareOptions(CutOptions(str(images), square_crops=True, jpeg_roundtrip=True), image_size)
    start = time.perf_counter()
    arrays = [array for file, crops in plans for _, array in prepare_image(file, crops, options).crops]
    decode = len(arrays) / (time.perf_counter() - start)
    engine = open_engine(model, backend="onnxruntime", device="cpu", image_size=image_size)
    batches = [np.stack(arrays[i : i + batch_size]) for i in range(0, len(arrays), batch_size)]
    engine.predict(batches[0])
    start = time.perf_counter()
    for batch in batches:
        engine.predict(batch)
    infer = len(arrays) / (time.perf_counter() - start)
    classes = len(json.loads(categories.read_text()))
    read = sum((images / file).stat().st_size for file, _ in plans) / len(arrays)
    return {"decode_core": decode, "infer_node": infer, "driver": driver_rate(classes), "bytes_per_crop": read}


def driver_rate(classes: int, images: int = 20_000, per_image: int = 2) -> float:
    """The driver's work per crop without a cluster: journal, classifications, merge (crops/s).

    The same driver code every executor feeds (:mod:`megaclassifier.run.pipeline`, :mod:`megaclassifier.run.resume`).
    """
    from megaclassifier.crop.core import CutImage
    from megaclassifier.formats.detections import DetectionResults
    from megaclassifier.formats.journal import open_journal
    from megaclassifier.merge import merge_rows
    from megaclassifier.run import RunOptions, RunSummary
    from megaclassifier.run.classifier import Classifier
    from megaclassifier.run.pipeline import classified_rows
    from megaclassifier.run.resume import RunResume

    rng = np.random.default_rng(0)
    names = [f"class {i:03d}" for i in range(classes)]
    classifier = Classifier(None, names, names, None, "bench")  # type: ignore[arg-type]
    box = {"category": "1", "conf": 0.9, "bbox": [0.1, 0.1, 0.2, 0.2]}
    data = {
        "images": [{"file": f"f{i}.jpg", "detections": [dict(box) for _ in range(per_image)]} for i in range(images)]
    }
    keys = {(f"f{i}.jpg", k): f"f{i}.jpg___crop{k:02d}_md.jpg" for i in range(images) for k in range(per_image)}
    batches = [
        ([(f"f{i}.jpg", k, keys[(f"f{i}.jpg", k)]) for k in range(per_image)],
         rng.dirichlet(np.ones(classes), per_image).astype(np.float32))
        for i in range(images)
    ]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        summary = RunSummary()
        options = RunOptions(output_json=Path(tmp) / "out.json")
        with open_journal(options.output_json, {"bench": 1}) as journal:
            resume = RunResume(journal, summary)
            for i in range(images):
                resume.seen(CutImage(f"f{i}.jpg", planned=per_image), per_image)
            bar = type("Bar", (), {"total": 0, "update": lambda self, n: None, "refresh": lambda self: None})()
            rows = resume.rows(
                classified_rows(iter(batches), classifier, summary, (0.1, None), bar=bar, csv=None), keys
            )
            merge_rows(DetectionResults(Path("x"), data), rows, classifier_name="b", classification_categories={})
        return images * per_image / (time.perf_counter() - start)


def scaling(rates: dict[str, float]) -> None:
    """Print the measured rates and what N such nodes would give (projected)."""
    print("\nmeasured on this machine (one node):")
    print(f"  decode + cut + resize, one core       {rates['decode_core']:9.1f} crops/s")
    print(f"  engine alone, all cores               {rates['infer_node']:9.1f} crops/s")
    print(f"  run --ray after start-up, this node   {rates['ray_node']:9.1f} crops/s")
    print(f"  driver merge side (no cluster)        {rates['driver']:9.1f} crops/s")
    print(f"  image bytes read per crop             {rates['bytes_per_crop'] / 1024:9.1f} KiB")
    node = min(rates["ray_node"], rates["infer_node"])  # a node never beats its engine alone
    print(f"projected for N nodes like this one: min(N x {node:.1f} crops/s, driver), and the storage it reads:")
    for n in (1, 4, 16, 64, 256):
        projected = min(n * node, rates["driver"])
        bound = "the driver" if projected == rates["driver"] else "CPU inference on the nodes"
        read = projected * rates["bytes_per_crop"] / 2**20
        print(f"  N = {n:>4}: {projected:9.1f} crops/s, bound by {bound}; storage read {read:7.1f} MiB/s")


if __name__ == "__main__":
    main()
