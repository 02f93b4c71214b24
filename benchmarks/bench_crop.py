"""Benchmark ``megaclassifier crop`` on the real test images replicated.

    .venv/bin/python benchmarks/bench_crop.py [--images 280] [--threads 2] [--reference]

Prints images/s, crops/s and peak memory for N and 4N images (memory must stay
flat), and with ``--reference`` the same for the reference ``crop_detections.py``
where the ``megadetector`` package is installed (the test extras install it).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from _workload import build_workload, measure

# the reference script imports azure.storage.blob at import time; it is not
# used without --container-url, so a stand-in module lets it run
REFERENCE_RUNNER = """
import runpy, sys, types
for name in ("azure", "azure.storage", "azure.storage.blob"):
    sys.modules.setdefault(name, types.ModuleType(name))
sys.modules["azure.storage.blob"].ContainerClient = object
sys.argv = ["crop_detections.py"] + sys.argv[1:]
runpy.run_module("megadetector.classification.crop_detections", run_name="__main__")
"""


def count_crops(detections: Path, threshold: float) -> int:
    md = json.loads(detections.read_text())
    return sum(1 for im in md["images"] for d in im["detections"] if d["category"] == "1" and d["conf"] >= threshold)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=280, help="images in the small workload (4x for the large)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--threshold", type=float, default=0.15)
    parser.add_argument("--reference", action="store_true", help="also time the reference crop_detections.py")
    args = parser.parse_args()

    runners = {"megaclassifier": [sys.executable, "-m", "megaclassifier", "-q", "crop"]}
    if args.reference:
        runners["reference"] = [sys.executable, "-c", REFERENCE_RUNNER]
    print(f"crop --square-crops --threshold {args.threshold} --threads {args.threads}")
    print(f"{'tool':<16}{'images':>8}{'crops':>8}{'seconds':>9}{'images/s':>10}{'crops/s':>9}{'peak MiB':>10}")
    with tempfile.TemporaryDirectory(prefix="bench_crop_") as tmp:
        for n in (args.images, 4 * args.images):
            detections, images = build_workload(Path(tmp), n)
            crops = count_crops(detections, args.threshold)
            for name, command in runners.items():
                out = Path(tmp, f"crops_{name}_{n}")
                m = measure(
                    [
                        *command,
                        str(detections),
                        str(out),
                        "--images-dir",
                        str(images),
                        "--square-crops",
                        "--threshold",
                        str(args.threshold),
                        "--threads",
                        str(args.threads),
                        "--logdir",
                        tmp,
                    ]
                )
                made = sum(1 for p in out.rglob("*.jpg"))
                note = "" if made == crops else f"  ({crops - made} boxes of failed images not cropped)"
                print(
                    f"{name:<16}{n:>8}{made:>8}{m.seconds:>9.2f}{n / m.seconds:>10.1f}"
                    f"{made / m.seconds:>9.1f}{m.peak_rss_mib:>10.0f}{note}"
                )
                shutil.rmtree(out)


if __name__ == "__main__":
    main()
