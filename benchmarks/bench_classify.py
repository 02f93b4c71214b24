"""Benchmark ``classify`` on the CPU: crops/s and peak memory by backend, batch size and worker count.

    .venv/bin/python benchmarks/bench_classify.py [--crops 256] [--arch efficientnet-b3] [--image-size 300]
        [--batch-sizes 1,8,32,64] [--workers 0,1,2] [--torch-batch-size 32] [--no-torch] [--flat-factor 4]

ONNX Runtime (the CPU default) runs every batch size x worker count; torch
runs fp32 and bf16 (CPU autocast) at one batch size for comparison. Last,
the defaults run on FLAT_FACTOR times more crops: peak memory stays the same.

An EfficientNet with seeded weights (169 classes, as MegaClassifier) is saved
as a checkpoint; CROPS crops are made by replicating the square crops of
../shared/testdata/cameratrap (or synthetic JPEGs when it is absent). Each
configuration runs ``classify_crops`` in a fresh process, after one untimed
run that creates the ONNX cache. Printed per configuration: crops/s over the
whole call (model loading included), crops/s after loading, the loading time,
and peak resident memory of the main process and of the largest worker.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TESTDATA = REPO.parent / "shared" / "testdata" / "cameratrap"


_MAKE_MODEL = """
import sys, torch
from efficientnet_pytorch import EfficientNet
torch.manual_seed(0)
model = EfficientNet.from_name(sys.argv[2], num_classes=int(sys.argv[3])).eval()
torch.save({"model": model.state_dict()}, sys.argv[1])
"""


def make_model(folder: Path, arch: str, classes: int = 169) -> tuple[Path, Path]:
    """A seeded EfficientNet checkpoint and its categories file.

    Built in a child process: this one stays small, so the peak memory that the
    measured children report (Linux keeps the high-water mark across exec) is theirs.
    """
    path = folder / f"seeded_{arch}.pt"
    subprocess.run([sys.executable, "-c", _MAKE_MODEL, str(path), arch, str(classes)], check=True)
    categories = folder / "index_to_name.json"
    categories.write_text(json.dumps({str(i): f"class {i:03d}" for i in range(classes)}))
    return path, categories


def make_crops(folder: Path, count: int) -> Path:
    """``count`` crop files in subfolders of ``folder/crops``: real crops replicated, or synthetic ones."""
    sources = folder / "sources"
    folder.mkdir(parents=True, exist_ok=True)
    if TESTDATA.is_dir():
        from megaclassifier.crop import crop_detections

        crop_detections(
            TESTDATA / "detections.json",
            sources,
            images_dir=TESTDATA / "images",
            square_crops=True,
            threshold=0.15,
            logdir=folder,
        )
        originals = sorted(sources.iterdir())
    else:
        import numpy as np
        from PIL import Image

        sources.mkdir()
        rng = np.random.default_rng(0)
        originals = []
        for i in range(32):
            side = int(rng.integers(150, 700))
            coarse = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
            path = sources / f"synthetic{i:02d}.jpg"
            coarse.resize((side, side), Image.Resampling.BICUBIC).save(path, quality=75)
            originals.append(path)
    crops = folder / "crops"
    for i in range(count):
        target = crops / f"copy{i // len(originals):04d}" / originals[i % len(originals)].name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(originals[i % len(originals)], target)
    return crops


def child(config: dict) -> None:
    """Run one configuration in this process and print its measurements as JSON."""
    import logging

    from megaclassifier.classify import classify as classify_module

    logging.basicConfig(level=logging.WARNING)
    loading = []
    real_open = classify_module.open_engine

    def timed_open(*a, **k):  # noqa: ANN202 - the engine
        start = time.perf_counter()
        engine = real_open(*a, **k)
        loading.append(time.perf_counter() - start)
        return engine

    classify_module.open_engine = timed_open
    summary = classify_module.classify_crops(
        config["model"],
        config["crops"],
        config["output"],
        classifier_categories=config["categories"],
        image_size=config["image_size"],
        batch_size=config["batch_size"],
        num_workers=config["workers"],
        device="cpu",
        backend=config["backend"],
        precision=config["precision"],
    )
    print(
        json.dumps(
            {
                "seconds": summary.seconds,
                "load": loading[0],
                "crops": summary.classified,
                "backend": summary.backend,
                "main_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "worker_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
            }
        )
    )


def warm_up(model: Path, backend: str, precision: str, image_size: int) -> None:
    """Open the engine once: this creates the ONNX cache."""
    from megaclassifier.engines import open_engine

    open_engine(model, backend=backend, device="cpu", precision=precision, image_size=image_size).close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--crops", type=int, default=256)
    parser.add_argument("--arch", default="efficientnet-b3")
    parser.add_argument("--image-size", type=int, default=300)
    parser.add_argument("--batch-sizes", default="1,8,32,64")
    parser.add_argument("--workers", default="0,1,2")
    parser.add_argument("--torch-batch-size", type=int, default=32)
    parser.add_argument("--no-torch", action="store_true", help="only ONNX Runtime")
    parser.add_argument("--flat-factor", type=int, default=4, help="0: skip the memory-flatness run")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child))
        return

    from importlib.metadata import version

    from megaclassifier.hardware import physical_cpu_count

    print(f"# classify benchmark: {args.arch} at {args.image_size} px, seeded weights, {args.crops} crops, CPU")
    print(
        f"# {os.cpu_count()} CPUs, {physical_cpu_count()} physical cores used for inference, torch "
        f"{version('torch')}, python {sys.version.split()[0]}"
    )
    with tempfile.TemporaryDirectory(prefix="bench_classify_") as tmp:
        folder = Path(tmp)
        model, categories = make_model(folder, args.arch)
        crops = make_crops(folder, args.crops)
        workers = [int(w) for w in args.workers.split(",")]
        configs = [("onnxruntime", "fp32", int(b), w) for b in args.batch_sizes.split(",") for w in workers]
        if not args.no_torch:
            configs += [("torch", precision, args.torch_batch_size, max(workers)) for precision in ("fp32", "bf16")]
        for backend, precision in sorted({(c[0], c[1]) for c in configs}):
            warm_up(model, backend, precision, args.image_size)
        print(
            "| backend | precision | batch | workers | crops/s | crops/s after load | load s | "
            "peak RSS main MiB | peak RSS worker MiB |"
        )
        print("|---|---|---|---|---|---|---|---|---|")

        def run(backend: str, precision: str, batch: int, workers: int | None, crop_dir: Path) -> dict:
            config = {
                "model": str(model),
                "crops": str(crop_dir),
                "output": str(folder / "out.csv"),
                "categories": str(categories),
                "image_size": args.image_size,
                "batch_size": batch,
                "workers": workers,
                "backend": backend,
                "precision": precision,
            }
            out = subprocess.run(
                [sys.executable, __file__, "--child", json.dumps(config)], capture_output=True, text=True, check=True
            ).stdout
            return json.loads(out.strip().splitlines()[-1])

        for backend, precision, batch, workers in configs:
            result = run(backend, precision, batch, workers, crops)
            load = result["load"]
            rate = result["crops"] / result["seconds"]
            steady = result["crops"] / max(result["seconds"] - load, 1e-9)
            worker = f"{result['worker_mib']:.0f}" if workers else "-"
            print(
                f"| {result['backend']} | {precision} | {batch} | {workers} | {rate:.1f} | {steady:.1f} | "
                f"{load:.1f} | {result['main_mib']:.0f} | {worker} |",
                flush=True,
            )
        if args.flat_factor > 1:
            many = make_crops(folder / "many", args.crops * args.flat_factor)
            small, large = (run("auto", "fp32", 32, None, d) for d in (crops, many))
            print(
                f"\nDefaults (auto backend, batch 32, auto workers), peak RSS of the main process: "
                f"{args.crops} crops {small['main_mib']:.0f} MiB, {args.crops * args.flat_factor} crops "
                f"{large['main_mib']:.0f} MiB ({large['crops'] / large['seconds']:.1f} crops/s)"
            )


if __name__ == "__main__":
    main()
