"""Benchmark ``megaclassifier evaluate`` and ``learn-mapping`` on a large synthetic classified results file.

    .venv/bin/python benchmarks/bench_evaluate.py [--detections 1000000] [--labels 100000]

Writes the results file of ``bench_smooth.py`` (4 detections an image, 3 classes
each, 14 classes) and a COCO Camera Traps file labelling ``--labels`` of its images
(5-image sequences, so ``evaluate`` scores images and sequences), then runs
``evaluate`` and ``learn-mapping --holdout-by folder`` in child processes and prints
the time, detections/s and peak memory (RSS) of each.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
from pathlib import Path

from _workload import measure
from bench_smooth import PER_IMAGE, SEQUENCE, TAXA, write_results


def write_labels(path: Path, n_images: int, n_labels: int) -> None:
    """CCT labels of every ``n_images / n_labels``-th image: the synthetic favourite class most of the time."""
    rng = random.Random(1)
    step = max(1, n_images // n_labels)
    images, annotations = [], []
    for number, i in enumerate(range(0, n_images, step)[:n_labels]):
        file = f"site{i % 13}/cam{i % 50:02d}/IMG_{i:07d}.JPG"
        images.append({"id": number, "file_name": file, "seq_id": f"s{i // SEQUENCE}", "location": f"cam{i % 50}"})
        annotations.append({"id": number, "image_id": number, "category_id": rng.randrange(len(TAXA))})
    categories = [{"id": i, "name": name} for i, (name, _) in enumerate(TAXA)]
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detections", type=int, default=1_000_000)
    parser.add_argument("--labels", type=int, default=100_000)
    parser.add_argument("--keep", type=Path, help="Keep the files in this folder (default: a temporary one).")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench_evaluate_"))
    root.mkdir(parents=True, exist_ok=True)
    n_images = args.detections // PER_IMAGE
    results, labels = root / "results.json", root / "labels.json"
    try:
        if not results.exists():
            write_results(results, n_images)
            write_labels(labels, n_images, args.labels)
        size = results.stat().st_size / 2**20
        print(f"{args.detections:,} detections ({size:,.0f} MiB), {args.labels:,} labelled images")
        print("| command | seconds | detections/s | peak MiB |")
        print("|---|---|---|---|")
        commands = {
            "evaluate": ["evaluate", str(results), str(labels), "-o", str(root / "eval")],
            "learn-mapping --holdout-by folder": [
                "learn-mapping", str(results), str(labels), "-o", str(root / "map.json"), "--holdout-by", "folder",
            ],
        }  # fmt: skip
        for name, command in commands.items():
            m = measure([sys.executable, "-m", "megaclassifier", "-q", *command])
            print(
                f"| {name} | {m.seconds:.1f} | {args.detections / m.seconds:,.0f} | {m.peak_rss_mib:,.0f} |", flush=True
            )
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
