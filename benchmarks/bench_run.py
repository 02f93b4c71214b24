"""Benchmark the chain (crop + classify + merge) against ``run``, end to end.

    .venv/bin/python benchmarks/bench_run.py [--boxes 2000] [--arch efficientnet-b3] [--image-size 300]
        [--growth 10] [--backends torch,onnxruntime] [--device cpu] [--precision fp32] [--skip-chain]
        [--sets cameratrap,lila31] [--decoder auto] [--skip-exact]

Builds a workload from the real test images replicated to about BOXES animal
boxes (threshold 0.15, square crops), with an EfficientNet of seeded weights
saved as a MegaClassifier-style checkpoint. Prints, side by side, crops/s end
to end and peak memory (RSS, the largest of the process and its workers) of:

* the one-time ONNX export, with a ``run`` on four images (``run`` caches the
  export beside the model; every later ``run`` and ``classify`` reuses it);
* start-up: ``run`` on one image, once the ONNX check is proven (cached);
* the decoding side alone (workers decode, crop, resize; no model), ``--exact``
  (full decode, JPEG round trip) and fast (JPEG draft, no round trip): how many
  crops/s the workers can feed a fast GPU;
* the main loop alone with a null engine (``bench_loop.py``, in-process);
* the chain (``classify --backend torch``, as the reference), ``run --exact`` and
  ``run`` (fast, ``--decoder DECODER``) with each backend, on the whole workload,
  and the ratio of each to the chain;
* ``run`` on 1/GROWTH of the workload, to show memory does not grow with it.

``--sets cameratrap,lila31`` replicates both real test sets (the 5 MP lila31
photos included) instead of the one ``_workload`` picks.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _workload import build_workload, measure, test_sets
from bench_classify import make_model

THRESHOLD = 0.15


def boxes_per_image(detections: Path) -> float:
    md = json.loads(detections.read_text())
    images = [im for im in md["images"] if im.get("detections")]
    boxes = sum(1 for im in images for d in im["detections"] if d["category"] == "1" and d["conf"] >= THRESHOLD)
    return boxes / len(images)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--boxes", type=int, default=2000)
    parser.add_argument("--arch", default="efficientnet-b3")
    parser.add_argument("--image-size", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", help="fp16 and bf16 use the torch backend")
    parser.add_argument("--growth", type=int, default=10, help="0 to skip the 1/GROWTH run")
    parser.add_argument("--backends", default="torch,onnxruntime")
    parser.add_argument("--skip-chain", action="store_true")
    parser.add_argument("--skip-exact", action="store_true", help="no run --exact rows")
    parser.add_argument("--sets", default="", help="real test sets to replicate, e.g. cameratrap,lila31")
    parser.add_argument("--decoder", default="auto", help="run's --decoder for the fast rows")
    parser.add_argument("--feed-only", nargs=2, metavar=("DETECTIONS", "IMAGES"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.feed_only:
        feed_only(Path(args.feed_only[0]), Path(args.feed_only[1]), args.image_size, args.num_workers, args.skip_exact)
        return

    megaclassifier = [sys.executable, "-m", "megaclassifier", "-q"]
    backends = args.backends.split(",")
    with tempfile.TemporaryDirectory(prefix="bench_run_") as tmp:
        root = Path(tmp)
        model, categories = make_model(root, args.arch)
        sources = test_sets(args.sets) if args.sets else None
        probe, _ = build_workload(root / "probe", 100, sources)
        per_image = boxes_per_image(probe)
        n_images = max(1, round(args.boxes / per_image))
        detections, images = build_workload(root / "full", n_images, sources)
        common = [
            "--image-size",
            str(args.image_size),
            "--batch-size",
            str(args.batch_size),
            "--num-workers",
            str(args.num_workers),
            "--device",
            args.device,
            "--precision",
            args.precision,
        ]
        print(
            f"{args.arch} at {args.image_size} px, {n_images} images, device {args.device} {args.precision}, "
            f"batch {args.batch_size}, {args.num_workers} workers"
        )
        print(f"{'pipeline':<50}{'crops':>7}{'seconds':>9}{'crops/s':>9}{'peak MiB':>10}{'vs chain':>10}")
        chain_rate = None

        def report(name: str, crops: int, seconds: float, peak: float) -> float:
            rate = crops / seconds
            ratio = f"{rate / chain_rate:.1f}x" if chain_rate else ""
            print(f"{name:<50}{crops:>7}{seconds:>9.1f}{rate:>9.2f}{peak:>10.0f}{ratio:>10}", flush=True)
            return rate

        def run(backend: str, workload: tuple[Path, Path], name: str, *extra: str) -> tuple[int, float, float]:
            out = root / f"{name}.json"
            m = measure(
                megaclassifier
                + [
                    "run",
                    str(workload[0]),
                    str(model),
                    "--images-dir",
                    str(workload[1]),
                    "--square-crops",
                    "--threshold",
                    str(THRESHOLD),
                    "--classifier-categories",
                    str(categories),
                    "--output-json",
                    str(out),
                    "--backend",
                    backend,
                    "--logdir",
                    tmp,
                    *common,
                    *extra,
                ]
            )
            return classified(out), m.seconds, m.peak_rss_mib

        if "onnxruntime" in backends:
            # the first images of the test set with animals: the export's cost shows in its seconds
            report(
                "run --backend onnxruntime, first use (ONNX export)",
                *run("onnxruntime", build_workload(root / "first", 4, sources), "first"),
            )
            report(
                "start-up: the same 4 images again (ONNX check proven)",
                *run("onnxruntime", build_workload(root / "first", 4, sources), "again"),
            )
        m = measure(
            [
                sys.executable,
                __file__,
                "--feed-only",
                str(detections),
                str(images),
                "--image-size",
                str(args.image_size),
                "--num-workers",
                str(args.num_workers),
                *(["--skip-exact"] if args.skip_exact else []),
            ],
            stdout_path=root / "feed.txt",
        )
        for line in (root / "feed.txt").read_text().splitlines():
            name, crops, seconds = line.rsplit(" ", 2)
            report(
                f"decoding only, {name} ({args.num_workers} workers, no model)",
                int(crops),
                float(seconds),
                m.peak_rss_mib,
            )
        loop = subprocess.run(
            [sys.executable, str(Path(__file__).with_name("bench_loop.py")), "--image-size", str(args.image_size)],
            capture_output=True,
            text=True,
            check=True,
        )
        print(loop.stdout, end="", flush=True)
        if not args.skip_chain:
            crops_dir, csv = root / "crops", root / "probs.csv"
            steps = [
                [
                    "crop",
                    str(detections),
                    str(crops_dir),
                    "--images-dir",
                    str(images),
                    "--square-crops",
                    "--threshold",
                    str(THRESHOLD),
                    "--threads",
                    str(max(1, args.num_workers)),
                    "--logdir",
                    tmp,
                ],
                [
                    "classify",
                    str(model),
                    str(crops_dir),
                    str(csv),
                    "--detections-json",
                    str(detections),
                    "--classifier-categories",
                    str(categories),
                    "--backend",
                    "torch",
                    *common,
                ],
                [
                    "merge",
                    str(csv),
                    str(categories),
                    "--output-json",
                    str(root / "chain.json"),
                    "--classifier-name",
                    "bench",
                    "--detection-json",
                    str(detections),
                ],
            ]
            results = [measure(megaclassifier + s) for s in steps]
            crops = sum(1 for _ in crops_dir.rglob("*.jpg"))
            chain_rate = report(
                "chain (crop + classify --backend torch + merge)",
                crops,
                sum(r.seconds for r in results),
                max(r.peak_rss_mib for r in results),
            )
        fast = ["--decoder", args.decoder]
        for backend in backends:
            if not args.skip_exact:
                report(f"run --exact --backend {backend}", *run(backend, (detections, images), "exact", "--exact"))
            report(
                f"run --backend {backend} (fast, --decoder {args.decoder})",
                *run(backend, (detections, images), "run", *fast),
            )
        if args.growth > 1:
            small = max(4, n_images // args.growth)
            report(
                f"run --backend {backends[-1]} (fast), 1/{args.growth} of the workload",
                *run(backends[-1], build_workload(root / "small", small, sources), "run_small", *fast),
            )


def feed_only(detections: Path, images: Path, image_size: int, num_workers: int, skip_exact: bool) -> None:
    """Decode, crop and resize every box as ``run --exact`` and ``run`` do, without a model.

    Prints one line per mode: its name, the crop count and the seconds.
    """
    from megaclassifier.crop.core import CutOptions
    from megaclassifier.crop.crop import plan_crops, resolve_detector
    from megaclassifier.formats.detections import load_detections
    from megaclassifier.run.prepare import PrepareOptions, prepared_stream

    results = load_detections(detections)
    plans = list(plan_crops(results, ".", threshold=THRESHOLD, detector=resolve_detector(results, None)))
    modes = {
        "--exact": CutOptions(str(images), square_crops=True, jpeg_roundtrip=True),
        "fast": CutOptions(str(images), square_crops=True, min_side=image_size),
    }
    for name, cut in modes.items():
        if skip_exact and name == "--exact":
            continue
        start = time.perf_counter()
        crops = sum(
            len(prepared.crops) for prepared in prepared_stream(plans, PrepareOptions(cut, image_size), num_workers)
        )
        print(f"{name} {crops} {time.perf_counter() - start:.3f}", flush=True)


def classified(path: Path) -> int:
    data = json.loads(path.read_text())
    return sum(1 for im in data["images"] for d in im.get("detections") or [] if "classifications" in d)


if __name__ == "__main__":
    main()
