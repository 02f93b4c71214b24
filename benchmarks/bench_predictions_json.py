"""Benchmark reading a SpeciesNet predictions.json and writing one (``export --format speciesnet``).

    .venv/bin/python benchmarks/bench_predictions_json.py [--detections 300000]

Writes a SpeciesNet 5.0.6 predictions.json of N boxes (3 per image, each with two raw classes
and a processed one, 9 labels) and the same results as MegaDetector JSON (converted once), then
times, each in a child process: ``export --format csv`` of the MegaDetector file and of the
predictions.json (the difference is the conversion), and ``export --format speciesnet`` of the
MegaDetector file. Prints seconds, boxes/s and peak memory; the ratio of the two csv exports
is the figure to keep (the machine is shared: compare within one run).
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

LABELS = [
    "5c7ce479-8a45-40b3-ae21-7c97dfae22f5;mammalia;proboscidea;elephantidae;loxodonta;africana;african elephant",
    "aca65aaa-8c6d-4b70-9d20-ac8b9e5b37b6;mammalia;cetartiodactyla;bovidae;bos;taurus;domestic cattle",
    "436ddfdd-bc43-44c3-a25d-34671d3430a0;mammalia;carnivora;ursidae;ursus;americanus;american black bear",
    "3d80f1d6-b1df-4966-9ff4-94053c7a902a;mammalia;carnivora;canidae;canis;familiaris;domestic dog",
    "0b1f0a3e-0002-4000-8000-000000000002;mammalia;carnivora;canidae;canis;lupus;gray wolf",
    "3184697f-51ad-4608-9a28-9edb5500159c;mammalia;carnivora;canidae;;;canine family",
    "22976d14-d424-4f18-a67a-d8e1689cefcc;mammalia;carnivora;felidae;leopardus;pardalis;ocelot",
    "f1856211-cfb7-4a5b-9158-c0f72fd09ee6;;;;;;blank",
    "f2d233e3-80e3-433d-9687-e29ecc7a467a;mammalia;;;;;mammal",
]
PER_IMAGE = 3


def prediction(rng: random.Random, i: int) -> dict:
    boxes = []
    for _ in range(PER_IMAGE):
        top, second = rng.sample(LABELS, 2)
        score = round(rng.uniform(0.3, 0.99), 4)
        boxes.append({
            "category": "1", "label": "animal", "conf": round(rng.uniform(0.1, 1.0), 3),
            "bbox": [round(rng.random() * 0.5, 4), round(rng.random() * 0.5, 4), 0.2153, 0.1877],
            "raw_classifications": {"classes": [top, second], "scores": [score, round((1 - score) / 2, 4)]},
            "processed_classification": {"class": top, "score": score, "source": "classifier+geofence"},
        })  # fmt: skip
    return {"filepath": f"/data/site{i % 13}/cam{i % 50:02d}/IMG_{i:07d}.JPG", "country": "USA",
            "detections": sorted(boxes, key=lambda b: -b["conf"]), "model_version": "4.0.1a"}  # fmt: skip


def write_inputs(root: Path, detections: int) -> None:
    """The predictions.json and its MegaDetector JSON (run in a child: the parent stays small)."""
    from megaclassifier.formats.detections import load_detections, write_detections

    rng = random.Random(0)
    data = {"info": {"format_version": "20261015"},
            "predictions": [prediction(rng, i) for i in range(detections // PER_IMAGE)]}  # fmt: skip
    (root / "predictions.json").write_text(json.dumps(data, indent=1))
    write_detections(root / "md.json", load_detections(root / "predictions.json").data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detections", type=int, default=300_000)
    parser.add_argument("--write-inputs", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write_inputs:
        write_inputs(args.write_inputs, args.detections)
        return
    root = Path(tempfile.mkdtemp(prefix="bench_predictions_"))
    try:
        measure([sys.executable, __file__, "--detections", str(args.detections), "--write-inputs", str(root)])
        predictions, md = root / "predictions.json", root / "md.json"
        cli = [sys.executable, "-m", "megaclassifier", "-q", "export"]
        runs = [
            ("export --format csv, MegaDetector JSON", [*cli, str(md), str(root / "a.csv"), "-f", "csv"], md),
            ("export --format csv, predictions.json", [*cli, str(predictions), str(root / "b.csv"), "-f", "csv"],
             predictions),
            ("export --format speciesnet, MegaDetector JSON",
             [*cli, str(md), str(root / "p.json"), "-f", "speciesnet"], md),
        ]  # fmt: skip
        print("| what | boxes | file MiB | seconds | boxes/s | peak MiB |")
        print("|---|---|---|---|---|---|")
        seconds = []
        for what, command, source in runs:
            m = measure(command)
            seconds.append(m.seconds)
            size = source.stat().st_size / 2**20
            print(f"| {what} | {args.detections:,} | {size:,.0f} | {m.seconds:.1f} | "
                  f"{args.detections / m.seconds:,.0f} | {m.peak_rss_mib:,.0f} |", flush=True)  # fmt: skip
        print(f"predictions.json / MegaDetector JSON (csv export): {seconds[1] / seconds[0]:.2f}x")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
