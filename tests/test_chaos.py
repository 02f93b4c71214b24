"""Issue 12's bar: kill -9 ``run`` and ``classify`` at random moments, rerun, and get a clean run's files.

On a workload of 540 crops (``tests/workload.py``) with the tiny model, each
command is started in a subprocess, killed with SIGKILL at a seeded random
moment after its journal got its first records, and started again, a few times; the last start
runs to the end. Its outputs must equal those of an uninterrupted run byte for
byte (``run``'s JSON: except ``info.classification_completion_time``), and no
worker process, journal, lock or temporary file may be left. ``run`` is tried under each
executor of its one driver (issue 19): a local worker pool, this process only, and Ray.
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

import pytest
from workload import Workload, alive, cli_command, kill_group, make_workload, start, wait_until, watch_children

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")]

SEED = 20261126
KILLS = 3


@pytest.fixture(scope="module")
def workload(tmp_path_factory: pytest.TempPathFactory) -> Workload:
    return make_workload(tmp_path_factory.mktemp("chaos"), copies=30)


#: ``run``'s executors: a local worker pool, this process only, and Ray (its own local cluster).
EXECUTORS = {"pool": ["--num-workers", "2"], "in-process": ["--num-workers", "0"], "ray": ["--ray"]}


def run_args(workload: Workload, model: Path, out: Path, executor: str = "pool") -> list[str]:
    return cli_command(
        "run", workload.detections, model, "--images-dir", workload.images, "--square-crops", "--threshold", "0.15",
        "--output-json", out / "out.json", "--output-csv", out / "out.csv", "--image-size", "32",
        "--batch-size", "8", *EXECUTORS[executor], "--logdir", out / "logs",
    )  # fmt: skip


def classify_args(crops: Path, model: Path, out: Path) -> list[str]:
    return cli_command(
        "classify", model, crops, out / "probs.csv", "--image-size", "32", "--batch-size", "4",
        "--num-workers", "2", "--backend", "torch",
    )  # fmt: skip


def finish(args: list[str], cwd: Path) -> None:
    process = start(args, cwd)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr


def kill_at_random(args: list[str], cwd: Path, journal: Path, rng: random.Random) -> bool:
    """Start, wait for the first journaled record, SIGKILL a random moment later; whether it was still working."""
    process = start(args, cwd)
    try:
        delay = rng.uniform(0.1, 1.5)
        began: list[float] = []

        def working() -> bool:
            if not began and journal.is_file() and journal.read_text().count("\n") >= 2:  # a record is out
                began.append(time.monotonic())
            return bool(began) and time.monotonic() - began[0] >= delay

        seen = watch_children(process, working, timeout=60)
        killed = process.poll() is None
        process.kill()
        process.communicate(timeout=30)
    finally:
        kill_group(process)
    assert wait_until(lambda: not any(alive(pid) for pid in seen), timeout=10), [p for p in seen if alive(p)]
    return killed


def chaos(args: list[str], cwd: Path, journal: Path, rng: random.Random, kills: int = KILLS) -> int:
    """Kill ``kills`` times, then finish; how many kills hit a working process."""
    hits = resumable = 0
    for _ in range(kills):
        hit = kill_at_random(args, cwd, journal, rng)
        hits += hit
        # a kill in mid-run leaves a journal to resume from; one that came as the run was finishing
        # (or after it) finds its journal gone with it, and the next start has nothing to do
        resumable += hit and journal.is_file() and len(journal.read_text().splitlines()) > 1
    assert resumable >= 1, "no kill left a journal to resume from"
    finish(args, cwd)
    return hits


def leftovers(folder: Path) -> list[str]:
    return sorted(
        str(p.relative_to(folder)) for p in folder.rglob("*") if p.suffix in (".tmp", ".journal", ".lock", ".pid")
    )


def without_time(path: Path) -> dict:
    data = json.loads(path.read_text(encoding="utf-8"))
    del data["info"]["classification_completion_time"]
    return data


@pytest.mark.parametrize("executor", list(EXECUTORS))
def test_run_killed_at_random_moments(workload, tiny_model, tmp_path, executor):
    if executor == "ray":
        pytest.importorskip("ray", reason="the [ray] extra is not installed (pip install 'megaclassifier[ray]')")
    clean, out = tmp_path / "clean", tmp_path / "out"
    finish(run_args(workload, tiny_model, clean), tmp_path)  # the pool's undisturbed output: every executor's
    rng = random.Random(SEED + len(executor))
    kills = 2 if executor == "ray" else KILLS  # a Ray start takes long on a small machine
    hits = chaos(run_args(workload, tiny_model, out, executor), tmp_path, out / "out.json.journal", rng, kills)
    assert hits >= 1
    assert (out / "out.csv").read_bytes() == (clean / "out.csv").read_bytes()
    assert len((out / "out.csv").read_text().splitlines()) == workload.crops + 1
    assert without_time(out / "out.json") == without_time(clean / "out.json")
    assert leftovers(tmp_path) == []


def test_classify_killed_at_random_moments(workload, tiny_model, tmp_path):
    from megaclassifier.crop import crop_detections

    crops = tmp_path / "crops"
    crop_detections(
        workload.detections, crops, images_dir=workload.images, square_crops=True, threshold=0.15, threads=2,
        logdir=tmp_path,
    )  # fmt: skip
    clean, out = tmp_path / "clean", tmp_path / "out"
    finish(classify_args(crops, tiny_model, clean), tmp_path)
    hits = chaos(classify_args(crops, tiny_model, out), tmp_path, out / "probs.csv.journal", random.Random(SEED + 1))
    assert hits >= 1
    assert (out / "probs.csv").read_bytes() == (clean / "probs.csv").read_bytes()
    assert len((out / "probs.csv").read_text().splitlines()) == workload.crops + 1
    assert leftovers(tmp_path) == []
