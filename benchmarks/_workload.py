"""Build benchmark workloads from the real test images, and measure child processes.

The images of ``../shared/testdata/cameratrap`` (or the bundled demo images)
are linked into ``copies`` subfolders and their detections replicated, so that
every copy is a distinct image with distinct crops. With ``blank_share``, that
share of the image entries is blank: the photo is there, but every detection
on it is below any threshold a run uses (conf :data:`BLANK_CONF`), as on the
50-80 % of a real camera-trap set where MegaDetector finds nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: The confidence of every detection on a blank image of the workload: below every threshold the benchmarks use.
BLANK_CONF = 0.01
SOURCES = [REPO.parent / "shared" / "testdata" / "cameratrap", REPO / "demo" / "data"]


def source_dir() -> Path:
    """The folder with ``detections.json`` and ``images/`` to replicate."""
    override = os.environ.get("MEGACLASSIFIER_BENCH_SOURCE")
    for candidate in ([Path(override)] if override else []) + SOURCES:
        if (candidate / "detections.json").is_file():
            return candidate
    sys.exit("no source images: need ../shared/testdata/cameratrap or demo/data")


def test_sets(names: str) -> list[Path]:
    """The folders of the named real test sets (``cameratrap,lila31``) under ``../shared/testdata``."""
    folders = [REPO.parent / "shared" / "testdata" / name for name in names.split(",")]
    missing = [str(f) for f in folders if not (f / "detections.json").is_file()]
    if missing:
        sys.exit(f"no test set at {', '.join(missing)}")
    return folders


def build_workload(
    root: Path, n_images: int, sources: list[Path] | None = None, blank_share: float = 0.0
) -> tuple[Path, Path]:
    """Replicate the source images to ``n_images`` image entries; return (detections json, images dir).

    With several ``sources`` (MegaDetector files of one format), their images alternate in each copy.
    ``blank_share`` of the entries (spread evenly: entry i is blank when floor((i + 1) * share) moves)
    keep their photo and their boxes, with every confidence set to :data:`BLANK_CONF`.
    """
    sources = sources or [source_dir()]
    mds = [json.loads((source / "detections.json").read_text()) for source in sources]
    md = mds[0]
    originals = [(s, im) for s, m in zip(sources, mds, strict=True) for im in m["images"] if im.get("detections")]
    images_dir = root / "images"
    entries = []
    copy = 0
    while len(entries) < n_images:
        folder = images_dir / f"copy{copy:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        for source, image in originals:
            if len(entries) >= n_images:
                break
            link = folder / image["file"]
            if not link.exists():
                link.symlink_to((source / "images" / image["file"]).resolve())
            entry = {**image, "file": f"copy{copy:04d}/{image['file']}"}
            i = len(entries)
            if int((i + 1) * blank_share) > int(i * blank_share):
                entry["detections"] = [{**d, "conf": BLANK_CONF} for d in image["detections"]]
            entries.append(entry)
        copy += 1
    md["images"] = entries
    path = root / f"detections_{n_images}.json"
    path.write_text(json.dumps(md))
    return path, images_dir


@dataclass
class Measurement:
    seconds: float
    peak_rss_mib: float


def measure(command: list[str], *, stdout_path: Path | None = None, **kwargs) -> Measurement:
    """Run a command; return its wall time and peak resident memory (its own, via wait4).

    Its standard output goes to ``stdout_path`` when given, else nowhere.
    """
    kwargs.setdefault("stderr", subprocess.DEVNULL)
    with open(stdout_path or os.devnull, "w") as stdout:
        start = time.perf_counter()
        proc = subprocess.Popen(command, stdout=stdout, **kwargs)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"command failed ({proc.returncode}): {' '.join(command)}")
    return Measurement(elapsed, usage.ru_maxrss / 1024)
