"""Benchmark the chain (crop + classify + merge) against ``run``, end to end, and how close to the limit it is.

    .venv/bin/python benchmarks/bench_run.py [--quick] [--boxes 600] [--arch efficientnet-b3] [--image-size 300]
        [--blank-share 0.6] [--growth 10] [--backends onnxruntime,openvino] [--device cpu] [--precision fp32]
        [--skip-chain] [--skip-exact] [--skip-feed] [--sets cameratrap,lila31] [--decoder auto]

Builds two workloads from the real test images replicated (threshold 0.15,
square crops), with an EfficientNet of seeded weights saved as a
MegaClassifier-style checkpoint:

* **all animals**: images with an animal box, to about BOXES boxes;
* **blank share**: the same animal images plus blank ones, so that BLANK_SHARE
  of the images (60 % by default; real camera-trap sets are 50-80 % blank) have
  no box above the threshold (every detection at conf 0.01, ``_workload``).

Prints, side by side, crops/s end to end and peak memory (RSS, the largest of
the process and its workers) of:

* the one-time ONNX export, with a ``run`` on four images (``run`` caches the
  export beside the model; every later ``run`` and ``classify`` reuses it);
* start-up: ``run`` on the same four images once the ONNX check is proven;
* the engine alone on each backend, on the workload's real crops (uint8 pixels,
  batches of BATCH_SIZE), and the time to the first crop in a fresh process once
  the backend has opened the model before (export, check and compiled model cached):
  imports, model load, decoding and classifying one image;
* the decoding side alone (workers decode, crop, resize; no model), ``--exact``
  and fast, and the main loop with a null engine (``bench_loop.py``);
* on each workload: the chain (``classify --backend torch``, as the reference)
  and ``run`` with each backend (``--exact`` too on the all-animal one), with
  the ratio of each to the chain of the same workload;
* ``run`` on 1/GROWTH of the all-animal images and on all of them: peak memory
  at 1x and GROWTHx the images.

Last, a summary: the model's FLOPs per crop (``torch.utils.flop_counter.FlopCounterMode``:
convolutions and matrix products, two per multiply-add), and the GFLOP/s that
each ``run`` reaches end to end and each engine alone. ``--quick`` (about 5
minutes on two cores) is ``--skip-exact --skip-feed`` with 150 boxes unless ``--boxes`` says.
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


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="--skip-exact --skip-feed, and 150 boxes by default")
    parser.add_argument("--boxes", type=int, help="animal boxes of the workload (default 600, --quick 150)")
    parser.add_argument("--arch", default="efficientnet-b3")
    parser.add_argument("--image-size", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", help="fp16 and bf16 use the torch backend")
    parser.add_argument("--blank-share", type=float, default=0.6, help="0 to skip the workload with blank images")
    parser.add_argument("--growth", type=int, default=10, help="0 to skip the 1/GROWTH run")
    parser.add_argument("--backends", default="", help="default: onnxruntime, and openvino where it is installed")
    parser.add_argument("--skip-chain", action="store_true")
    parser.add_argument("--skip-exact", action="store_true", help="no run --exact rows")
    parser.add_argument("--skip-feed", action="store_true", help="no decoding-only and null-engine rows")
    parser.add_argument("--sets", default="", help="real test sets to replicate, e.g. cameratrap,lila31")
    parser.add_argument("--decoder", default="auto", help="run's --decoder for the fast rows")
    parser.add_argument("--feed-only", nargs=2, metavar=("DETECTIONS", "IMAGES"), help=argparse.SUPPRESS)
    parser.add_argument("--engine-only", nargs=3, metavar=("MODEL", "DETECTIONS", "IMAGES"), help=argparse.SUPPRESS)
    parser.add_argument("--flops-only", metavar="MODEL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.skip_exact, args.skip_feed = True, True
    args.boxes = args.boxes or (150 if args.quick else 600)
    if not args.backends:
        try:
            import openvino  # noqa: F401

            args.backends = "onnxruntime,openvino"
        except ImportError:
            args.backends = "onnxruntime"
    return args


class Bench:
    """The workloads, the model and the printed table of one benchmark run."""

    def __init__(self, args: argparse.Namespace, root: Path) -> None:
        self.args, self.root = args, root
        self.megaclassifier = [sys.executable, "-m", "megaclassifier", "-q"]
        self.backends = args.backends.split(",")
        self.model, self.categories = make_model(root, args.arch)
        self.sources = test_sets(args.sets) if args.sets else None
        probe, _ = build_workload(root / "probe", 100, self.sources)
        self.n_images = max(1, round(args.boxes / boxes_per_image(probe)))
        self.animals = build_workload(root / "full", self.n_images, self.sources)
        self.blank = None
        if args.blank_share > 0:
            n = round(self.n_images / (1 - args.blank_share))
            self.blank = build_workload(root / "blank", n, self.sources, blank_share=args.blank_share)
        self.common = ["--image-size", str(args.image_size), "--batch-size", str(args.batch_size)]
        self.common += ["--num-workers", str(args.num_workers), "--device", args.device, "--precision", args.precision]
        self.chain_rate: float | None = None
        self.rates: dict[str, float] = {}  # summary name -> crops/s

    def report(self, name: str, crops: int, seconds: float, peak: float) -> float:
        rate = crops / seconds
        ratio = f"{rate / self.chain_rate:.1f}x" if self.chain_rate else ""
        print(f"{name:<58}{crops:>7}{seconds:>9.1f}{rate:>9.2f}{peak:>10.0f}{ratio:>10}", flush=True)
        return rate

    def run(self, backend: str, workload: tuple[Path, Path], name: str, *extra: str) -> tuple[int, float, float]:
        out = self.root / f"{name}.json"
        m = measure(
            self.megaclassifier
            + ["run", str(workload[0]), str(self.model), "--images-dir", str(workload[1]), "--square-crops",
               "--threshold", str(THRESHOLD), "--classifier-categories", str(self.categories),
               "--output-json", str(out), "--backend", backend, "--logdir", str(self.root), *self.common, *extra]
        )  # fmt: skip
        return classified(out), m.seconds, m.peak_rss_mib

    def first_use(self) -> None:
        first = build_workload(self.root / "first", 4, self.sources)
        self.report("run --backend onnxruntime, first use (ONNX export)", *self.run("onnxruntime", first, "first"))
        self.report("start-up: the same 4 images again (ONNX check proven)", *self.run("onnxruntime", first, "again"))

    def engine_only(self) -> dict[str, dict[str, float]]:
        """Each backend's engine alone, in a fresh process: start-up times and crops/s."""
        found = {}
        for backend in self.backends:
            for boxes in (1, min(self.args.boxes, 128)):  # the first opens once: export, check, compile cached
                out = subprocess.run(
                    [sys.executable, __file__, "--engine-only", str(self.model), *map(str, self.animals),
                     "--backends", backend, "--image-size", str(self.args.image_size),
                     "--batch-size", str(self.args.batch_size), "--boxes", str(boxes)],
                    capture_output=True, text=True, check=True,
                ).stdout  # fmt: skip
            found[backend] = figures = json.loads(out.splitlines()[-1])
            self.report(f"engine alone, {backend} (batches of {self.args.batch_size})", int(figures["crops"]),
                        figures["seconds"], figures["peak_mib"])  # fmt: skip
            self.rates[f"engine alone, {backend}"] = figures["crops"] / figures["seconds"]
        return found

    def feed(self) -> None:
        detections, images = self.animals
        m = measure(
            [sys.executable, __file__, "--feed-only", str(detections), str(images), "--image-size",
             str(self.args.image_size), "--num-workers", str(self.args.num_workers),
             *(["--skip-exact"] if self.args.skip_exact else [])],
            stdout_path=self.root / "feed.txt",
        )  # fmt: skip
        for line in (self.root / "feed.txt").read_text().splitlines():
            name, crops, seconds = line.rsplit(" ", 2)
            label = f"decoding only, {name} ({self.args.num_workers} workers, no model)"
            self.report(label, int(crops), float(seconds), m.peak_rss_mib)
        loop = subprocess.run(
            [sys.executable, str(Path(__file__).with_name("bench_loop.py")), "--image-size", str(self.args.image_size)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        print(loop.stdout, end="", flush=True)

    def chain(self, workload: tuple[Path, Path], name: str) -> float:
        detections, images = workload
        crops_dir, csv = self.root / f"crops_{name}", self.root / f"probs_{name}.csv"
        steps = [
            ["crop", str(detections), str(crops_dir), "--images-dir", str(images), "--square-crops", "--threshold",
             str(THRESHOLD), "--threads", str(max(1, self.args.num_workers)), "--logdir", str(self.root)],
            ["classify", str(self.model), str(crops_dir), str(csv), "--detections-json", str(detections),
             "--classifier-categories", str(self.categories), "--backend", "torch", *self.common],
            ["merge", str(csv), str(self.categories), "--output-json", str(self.root / f"chain_{name}.json"),
             "--classifier-name", "bench", "--detection-json", str(detections)],
        ]  # fmt: skip
        results = [measure(self.megaclassifier + s) for s in steps]
        crops = sum(1 for _ in crops_dir.rglob("*.jpg"))
        self.chain_rate = None
        rate = self.report(
            f"chain, {name}", crops, sum(r.seconds for r in results), max(r.peak_rss_mib for r in results)
        )
        self.chain_rate = self.rates[f"chain, {name}"] = rate
        return rate

    def workload_rows(self, workload: tuple[Path, Path], name: str, exact: bool) -> None:
        images = len(json.loads(workload[0].read_text())["images"])
        print(f"-- workload: {name}, {images} images", flush=True)
        self.chain_rate = None
        if not self.args.skip_chain:
            self.chain(workload, name)
        for backend in self.backends:
            if exact and not self.args.skip_exact:
                self.report(f"run --exact --backend {backend}, {name}",
                            *self.run(backend, workload, f"exact_{name}", "--exact"))  # fmt: skip
            label = f"run --backend {backend}, {name}"
            self.rates[label] = self.report(label, *self.run(backend, workload, f"run_{name}_{backend}",
                                                              "--decoder", self.args.decoder))  # fmt: skip

    def growth(self) -> dict[str, float]:
        """Peak MiB of ``run`` at 1x and GROWTHx the images."""
        backend = self.backends[0]
        small = build_workload(self.root / "small", max(4, self.n_images // self.args.growth), self.sources)
        self.chain_rate = None
        peaks = {}
        for label, workload in (("1x", small), (f"{self.args.growth}x", self.animals)):
            crops, seconds, peak = self.run(backend, workload, f"growth_{label}", "--decoder", self.args.decoder)
            images = len(json.loads(workload[0].read_text())["images"])
            self.report(f"run --backend {backend}, {label} the images ({images})", crops, seconds, peak)
            peaks[label] = peak
        return peaks


def main() -> None:
    args = parse_args()
    if args.feed_only:
        feed_only(Path(args.feed_only[0]), Path(args.feed_only[1]), args.image_size, args.num_workers, args.skip_exact)
        return
    if args.engine_only:
        engine_only(*map(Path, args.engine_only), args.backends, args.image_size, args.batch_size, args.boxes)
        return
    if args.flops_only:
        print(flops_per_crop(Path(args.flops_only), args.image_size))
        return
    with tempfile.TemporaryDirectory(prefix="bench_run_") as tmp:
        bench = Bench(args, Path(tmp))
        print(f"{args.arch} at {args.image_size} px, {bench.n_images} animal images, device {args.device} "
              f"{args.precision}, batch {args.batch_size}, {args.num_workers} workers")  # fmt: skip
        print(f"{'pipeline':<58}{'crops':>7}{'seconds':>9}{'crops/s':>9}{'peak MiB':>10}{'vs chain':>10}")
        if "onnxruntime" in bench.backends:
            bench.first_use()
        starts = bench.engine_only()
        if not args.skip_feed:
            bench.feed()
        bench.workload_rows(bench.animals, "all animals", exact=True)
        if bench.blank is not None:
            bench.workload_rows(bench.blank, f"{args.blank_share:.0%} blank images", exact=False)
        peaks = bench.growth() if args.growth > 1 else {}
        flops = float(
            subprocess.run(
                [sys.executable, __file__, "--flops-only", str(bench.model), "--image-size", str(args.image_size)],
                capture_output=True, text=True, check=True,
            ).stdout.split()[-1]
        )  # fmt: skip
        summary(flops, bench.rates, starts, peaks)


def summary(
    flops: float, rates: dict[str, float], starts: dict[str, dict[str, float]], peaks: dict[str, float]
) -> None:
    print(f"\nmodel: {flops / 1e9:.2f} GFLOP per crop (torch.utils.flop_counter)")
    print(f"{'':<58}{'crops/s':>9}{'GFLOP/s':>9}")
    for name, rate in rates.items():
        print(f"{name:<58}{rate:>9.2f}{rate * flops / 1e9:>9.1f}")
    for backend, f in starts.items():
        total = f["imports"] + f["load"] + f["first"]
        print(f"time to first crop, {backend}: {total:.1f} s (imports {f['imports']:.1f} s, model load with the "
              f"cached export {f['load']:.1f} s, first image decoded and classified {f['first']:.2f} s)")  # fmt: skip
    if peaks:
        print("peak MiB of run: " + ", ".join(f"{k} the images {v:.0f}" for k, v in peaks.items()))


def engine_only(model: Path, detections: Path, images: Path, backend: str, size: int, batch: int, count: int) -> None:
    """In a fresh process: time the imports, the model load and the first crop, then the engine alone.

    Prints one JSON line: ``imports``, ``load``, ``first`` (seconds), ``crops``, ``seconds`` and ``peak_mib``.
    """
    import resource

    start = time.perf_counter()
    import megaclassifier.run.pipeline  # noqa: F401 - what run imports before its engine
    from megaclassifier.crop.core import CutOptions
    from megaclassifier.crop.crop import plan_crops, resolve_detector
    from megaclassifier.engines import open_engine
    from megaclassifier.formats.detections import load_detections
    from megaclassifier.run.prepare import PrepareOptions, prepared_stream

    imports = time.perf_counter() - start
    start = time.perf_counter()
    engine = open_engine(model, backend=backend, device="cpu", image_size=size)
    load = time.perf_counter() - start
    start = time.perf_counter()
    results = load_detections(detections)
    plans = list(plan_crops(results, ".", threshold=THRESHOLD, detector=resolve_detector(results, None)))
    options = PrepareOptions(CutOptions(str(images), square_crops=True, min_side=size), size)
    stream = prepared_stream(plans, options, 0)
    first_image = next(stream)
    pixels = [p for _, p in first_image.crops if p is not None]
    engine.predict(pixels[0][None])
    first = time.perf_counter() - start
    for prepared in stream:
        pixels += [p for _, p in prepared.crops if p is not None]
        if len(pixels) >= count:
            break
    import numpy as np

    crops = np.stack(pixels[:count])
    engine.predict(crops[:batch])  # warm
    start = time.perf_counter()
    for i in range(0, len(crops), batch):
        engine.predict(crops[i : i + batch])
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"imports": imports, "load": load, "first": first, "crops": len(crops), "seconds": seconds,
                      "peak_mib": peak}))  # fmt: skip


def flops_per_crop(model: Path, size: int) -> float:
    """The model's FLOPs on one crop, as ``torch.utils.flop_counter`` counts them."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from megaclassifier.models.loading import load_model

    module = load_model(model).module
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(torch.zeros(1, 3, size, size))
    return float(counter.get_total_flops())


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
