"""Benchmark ``megaclassifier smooth`` on a large synthetic classified results file.

    .venv/bin/python benchmarks/bench_smooth.py [--detections 1000000] [--level image|sequence|both]

Writes a results file of N detections (4 per image, 3 classes each, a
14-class taxonomy in ``classification_category_descriptions``, our usual
indent-1 layout) and a COCO Camera Traps file with 5-image sequences, then
smooths it in a child process and prints the time, detections/s, peak memory
(RSS of that process) and the ratio of peak memory to the JSON file's size, for
N/4 and N detections (memory must stay flat, within 3x the file's size).
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

TAXA = [
    ("white-tailed deer", "mammalia;cetartiodactyla;cervidae;odocoileus;virginianus"),
    ("mule deer", "mammalia;cetartiodactyla;cervidae;odocoileus;hemionus"),
    ("elk", "mammalia;cetartiodactyla;cervidae;cervus;canadensis"),
    ("deer family", "mammalia;cetartiodactyla;cervidae;;"),
    ("coyote", "mammalia;carnivora;canidae;canis;latrans"),
    ("gray wolf", "mammalia;carnivora;canidae;canis;lupus"),
    ("canis", "mammalia;carnivora;canidae;canis;"),
    ("carnivore", "mammalia;carnivora;;;"),
    ("cattle", "mammalia;cetartiodactyla;bovidae;bos;taurus"),
    ("other", ";;;;"),
    ("blank", ";;;;"),
    ("animal", ";;;;"),
    ("mammal", "mammalia;;;;"),
    ("wild turkey", "aves;galliformes;phasianidae;meleagris;gallopavo"),
]
PER_IMAGE = 4
SEQUENCE = 5


def synthetic_image(rng: random.Random, i: int) -> dict:
    favourite = rng.randrange(len(TAXA))
    detections = []
    for _ in range(PER_IMAGE):
        classes = [favourite if rng.random() < 0.7 else rng.randrange(len(TAXA))]
        while len(classes) < 3:
            c = rng.randrange(len(TAXA))
            if c not in classes:
                classes.append(c)
        scores = sorted((round(rng.random(), 4) for _ in classes), reverse=True)
        detections.append({
            "category": "1", "conf": round(rng.uniform(0.1, 1.0), 3),
            "bbox": [round(rng.random() * 0.5, 4), round(rng.random() * 0.5, 4), 0.2153, 0.1877],
            "classifications": [[str(c), s] for c, s in zip(classes, scores, strict=True)],
        })  # fmt: skip
    return {"file": f"site{i % 13}/cam{i % 50:02d}/IMG_{i:07d}.JPG", "detections": detections}


def write_results(path: Path, n_images: int) -> None:
    """The results file, written image by image in the indent-1 layout."""
    rng = random.Random(0)
    header = {
        "info": {"format_version": "1.4", "detector": "md_v5a.0.0.pt", "classifier": "synthetic",
                 "classifier_metadata": {"typical_classification_threshold": 0.75}},
        "detection_categories": {"1": "animal", "2": "person", "3": "vehicle"},
        "classification_categories": {str(i): name for i, (name, _) in enumerate(TAXA)},
        "classification_category_descriptions": {str(i): f"g{i};{t};{n}" for i, (n, t) in enumerate(TAXA)},
    }  # fmt: skip
    with open(path, "w", encoding="utf-8") as f:
        head = json.dumps(header, indent=1)
        f.write(head[:-2] + ',\n "images": [\n')
        for i in range(n_images):
            text = json.dumps(synthetic_image(rng, i), indent=1).replace("\n", "\n  ")
            f.write(("  " if i == 0 else ",\n  ") + text)
        f.write("\n ]\n}")


def write_sequences(path: Path, n_images: int) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write('{"images": [')
        for i in range(n_images):
            entry = {"file_name": f"site{i % 13}/cam{i % 50:02d}/IMG_{i:07d}.JPG", "seq_id": f"s{i // SEQUENCE}"}
            f.write(("" if i == 0 else ",") + json.dumps(entry))
        f.write("]}")


def run_one(root: Path, n_detections: int, level: str) -> None:
    n_images = n_detections // PER_IMAGE
    source, cct = root / f"in_{n_detections}.json", root / f"cct_{n_detections}.json"
    if not source.exists():
        write_results(source, n_images)
        write_sequences(cct, n_images)
    args = ["--level", "sequence", "--sequences", str(cct)] if level == "sequence" else []
    command = [sys.executable, "-m", "megaclassifier", "-q", "smooth", str(source), str(root / "out.json"), *args]
    m = measure(command)
    size = source.stat().st_size / 2**20
    print(f"| {level} | {n_detections:,} | {size:,.0f} | {m.seconds:.1f} | {n_detections / m.seconds:,.0f} | "
          f"{m.peak_rss_mib:,.0f} | {m.peak_rss_mib / size:.2f} |", flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detections", type=int, default=1_000_000)
    parser.add_argument("--level", choices=["image", "sequence", "both"], default="both")
    parser.add_argument("--keep", type=Path, help="Keep the files in this folder (default: a temporary one).")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench_smooth_"))
    root.mkdir(parents=True, exist_ok=True)
    levels = ["image", "sequence"] if args.level == "both" else [args.level]
    print("| level | detections | file MiB | seconds | detections/s | peak MiB | peak / file size |")
    print("|---|---|---|---|---|---|---|")
    try:
        for n in (args.detections // 4, args.detections):
            for level in levels:
                run_one(root, n, level)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
