"""A workload of a few hundred crops for the resume, signal and chaos tests, and process helpers.

The demo images (``demo/data``: 8 small photos, 18 animal boxes at threshold
0.15) are hard-linked (copied where links fail) ``copies`` times into
``copyNN/`` folders, with a detections file naming every copy: 20 copies are
160 images and 360 crops.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "demo" / "data"
CROPS_PER_COPY = 18


@dataclass(frozen=True)
class Workload:
    detections: Path
    images: Path
    crops: int


def make_workload(folder: Path, copies: int) -> Workload:
    """Write ``folder/detections.json`` and ``folder/images/copyNN/...`` (see the module docstring)."""
    data = json.loads((DEMO / "detections.json").read_text(encoding="utf-8"))
    images = []
    for n in range(copies):
        for image in data["images"]:
            source = DEMO / "images" / image["file"]
            target = folder / "images" / f"copy{n:02d}" / image["file"]
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(source, target)
            except OSError:
                shutil.copyfile(source, target)
            images.append({**image, "file": f"copy{n:02d}/{image['file']}"})
    data["images"] = images
    detections = folder / "detections.json"
    detections.write_text(json.dumps(data, indent=1), encoding="utf-8")
    return Workload(detections, folder / "images", copies * CROPS_PER_COPY)


def cli_command(*args: object) -> list[str]:
    """``python -m megaclassifier -q ARGS``."""
    return [sys.executable, "-m", "megaclassifier", "-q", *map(str, args)]


def start(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    """Start the CLI in its own process group (so a Ctrl-C can go to all of it, as a terminal's does)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )


def children(pid: int) -> set[int]:
    """The descendants of ``pid`` now, read from ``/proc/<pid>/task/*/children``."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        current = todo.pop()
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                kids = {int(k) for k in (task / "children").read_text().split()}
            except (OSError, ValueError):
                continue
            todo.extend(kids - found)
            found |= kids
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not count)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def wait_until(condition, timeout: float, step: float = 0.05) -> bool:  # noqa: ANN001 - a callable
    """Poll ``condition()`` until true or ``timeout`` seconds pass; its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return bool(condition())


def watch_children(process: subprocess.Popen[str], until, timeout: float) -> set[int]:  # noqa: ANN001
    """Record ``process``'s descendants until ``until()`` holds (or ``timeout``); all seen."""
    seen: set[int] = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        seen |= children(process.pid)
        if until():
            break
        time.sleep(0.02)
    seen |= children(process.pid)
    return seen


def kill_group(process: subprocess.Popen[str], sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to the process group of ``process`` (cleanup after a failed test)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
