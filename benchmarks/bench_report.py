"""Benchmark ``megaclassifier report`` and ``export`` on a large synthetic results file.

    .venv/bin/python benchmarks/bench_report.py [--detections 100000] [--per-image 50] [--workers 2]

The bundled demo images (640 px) are linked into ``copyNNNN`` folders; each
image entry gets ``--per-image`` detections (the real boxes, shifted a little
so that every thumbnail is distinct) with seeded classifications over 8
classes. Prints seconds, detections/s and peak memory of: the first report
(every thumbnail made), a second report (thumbnails reused), and the CSV and
XLSX exports, for N/4 and N detections (memory should grow with the results
file only, not with the images), and the report's page count and largest page
(every page is paged, so it stays small however many detections). Where
Playwright and Chromium are installed (``/usr/bin/chromium``, or
``MEGACLASSIFIER_CHROMIUM``), also how long Chromium takes to load the index and
the largest page from disk, images included.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
from pathlib import Path

from _workload import REPO, measure

CLASSES = ["white-tailed deer", "mule deer", "elk", "cattle", "coyote", "gray wolf", "black bear", "bobcat"]


def build(root: Path, n_detections: int, per_image: int) -> tuple[Path, Path]:
    """Write the synthetic results and the linked images; return (results json, images dir)."""
    source = REPO / "demo" / "data"
    md = json.loads((source / "detections.json").read_text())
    originals = [im for im in md["images"] if any(d["conf"] >= 0.15 for d in im["detections"])]
    rng = random.Random(0)
    images, entries, total = root / "images", [], 0
    while total < n_detections:
        original = originals[len(entries) % len(originals)]
        folder = f"copy{len(entries) // len(originals):04d}"
        link = images / folder / original["file"]
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to((source / "images" / original["file"]).resolve())
        boxes = [d for d in original["detections"] if d["conf"] >= 0.15]
        detections = [_detection(boxes[i % len(boxes)], i, rng) for i in range(min(per_image, n_detections - total))]
        entries.append({"file": f"{folder}/{original['file']}", "detections": detections})
        total += len(detections)
    md["images"] = entries
    md["info"]["classifier"] = "synthetic"
    md["classification_categories"] = {str(i): name for i, name in enumerate(CLASSES)}
    path = root / f"results_{n_detections}.json"
    path.write_text(json.dumps(md))
    return path, images


def _detection(box: dict, i: int, rng: random.Random) -> dict:
    x, y, w, h = box["bbox"]
    shift = (i // 8) * 0.002
    top, second = rng.sample(range(len(CLASSES)), 2)
    p = round(rng.uniform(0.3, 1.0), 4)
    return {
        "category": box["category"],
        "conf": box["conf"],
        "bbox": [round(min(x + shift, 1 - w), 4), y, w, h],
        "classifications": [[str(top), p], [str(second), round((1 - p) * rng.random(), 4)]],
    }


def _browser_load_times(*pages: Path) -> None:
    """Print the milliseconds Chromium takes to load each page (load event, images decoded); skip without it."""
    chromium = os.environ.get("MEGACLASSIFIER_CHROMIUM", "/usr/bin/chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return
    if not Path(chromium).is_file():
        return
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--headless", "--no-sandbox", "--disable-gpu"])
        for path in pages:
            page = browser.new_page()
            page.goto(path.as_uri(), wait_until="load")
            ms = page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd")
            print(f"  Chromium loads {path.parent.name}/{path.name} in {ms:.0f} ms")
            page.close()
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--detections", type=int, default=100_000, help="detections in the large file (N/4 too)")
    parser.add_argument("--per-image", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2, help="report --num-workers")
    args = parser.parse_args()
    cli = [sys.executable, "-m", "megaclassifier", "-q"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    print(f"report --num-workers {args.workers}; export; {args.per_image} detections per image")
    print(f"{'step':<22}{'detections':>11}{'images':>8}{'seconds':>9}{'det/s':>9}{'peak MiB':>10}")
    with tempfile.TemporaryDirectory(prefix="bench_report_") as tmp:
        for n in (args.detections // 4, args.detections):
            results, images = build(Path(tmp, str(n)), n, args.per_image)
            n_images = len(json.loads(results.read_text())["images"])
            out = Path(tmp, str(n))
            steps = {
                "report (thumbnails)": ["report", results, out / "report", "--images-dir", images,
                                        "--num-workers", args.workers],
                "report (rerun)": ["report", results, out / "report", "--images-dir", images,
                                   "--num-workers", args.workers],
                "export csv": ["export", results, out / "t.csv", "--format", "csv", "--images-dir", images],
                "export xlsx": ["export", results, out / "t.xlsx", "--format", "xlsx", "--images-dir", images],
            }  # fmt: skip
            for name, command in steps.items():
                m = measure([*cli, *map(str, command)], env=env)
                print(f"{name:<22}{n:>11}{n_images:>8}{m.seconds:>9.1f}{n / m.seconds:>9.0f}{m.peak_rss_mib:>10.0f}")
            pages = list((out / "report").rglob("*.html"))
            largest = max(pages, key=lambda p: p.stat().st_size)
            _browser_load_times(out / "report" / "index.html", largest)
            index_kib = (out / "report" / "index.html").stat().st_size / 1024
            print(f"  {len(pages)} pages; largest {largest.stat().st_size / 1024:.0f} KiB "
                  f"({largest.relative_to(out / 'report')}); index {index_kib:.0f} KiB")  # fmt: skip


if __name__ == "__main__":
    main()
