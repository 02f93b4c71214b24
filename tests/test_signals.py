"""Issue 12, item 3: workers die with their parent; SIGTERM and Ctrl-C end ``run`` and ``classify`` cleanly.

Each test runs the real CLI in a subprocess on a workload of a few hundred
crops (``tests/workload.py``), records the process's descendants (decoding or
crop-reading workers, multiprocessing's resource tracker) from ``/proc`` while
it works, sends the signal once the work is under way, and checks the exit
code, the one line on stderr, that no descendant is left running and that no
temporary file is left beside the outputs.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from workload import (
    Workload,
    alive,
    children,
    cli_command,
    kill_group,
    make_workload,
    start,
    wait_until,
    watch_children,
)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

IMAGE_SIZE = "32"


@pytest.fixture(scope="module")
def big_workload(tmp_path_factory: pytest.TempPathFactory) -> Workload:
    return make_workload(tmp_path_factory.mktemp("workload"), copies=60)


@pytest.fixture(scope="module")
def workload_crops(big_workload: Workload, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from megaclassifier.crop import crop_detections

    out = tmp_path_factory.mktemp("crops") / "crops"
    logs = out.parent / "logs"
    crop_detections(
        big_workload.detections,
        out,
        images_dir=big_workload.images,
        square_crops=True,
        threshold=0.15,
        threads=2,
        logdir=logs,
    )
    return out


def run_args(workload: Workload, model: Path, out: Path) -> list[str]:
    return cli_command(
        "run", workload.detections, model, "--images-dir", workload.images, "--square-crops", "--threshold", "0.15",
        "--output-json", out / "out.json", "--output-csv", out / "out.csv", "--image-size", IMAGE_SIZE,
        "--num-workers", "2", "--batch-size", "8", "--logdir", out,
    )  # fmt: skip


def classify_args(crops: Path, model: Path, out: Path) -> list[str]:
    return cli_command(
        "classify", model, crops, out / "probs.csv", "--image-size", IMAGE_SIZE, "--num-workers", "2",
        "--batch-size", "4", "--backend", "torch",
    )  # fmt: skip


def interrupt(
    args: list[str], cwd: Path, journal: Path, how: str, *, early: bool = False
) -> tuple[subprocess.Popen[str], set[int], str]:
    """Start the CLI, wait until its journal has a record (``early``: its first worker), send ``how``.

    Returns (process, the descendants seen, stderr).
    """
    process = start(args, cwd)
    try:
        if early:
            seen = watch_children(process, lambda: bool(children(process.pid) - {process.pid}), timeout=60)
        else:
            started = lambda: journal.is_file() and journal.read_text().count("\n") >= 2  # noqa: E731
            seen = watch_children(process, started, timeout=60)
        assert process.poll() is None, f"finished before the signal: {process.communicate()[1]}"
        assert seen, "no worker process was seen"
        if how == "SIGKILL":
            process.kill()
        elif how == "SIGTERM":
            process.terminate()
        else:  # Ctrl-C in a terminal: SIGINT to the whole process group
            kill_group(process, signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        kill_group(process)
    return process, seen, stderr


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.mark.parametrize(("how", "code", "line"), [
    ("SIGTERM", 143, "Terminated (SIGTERM); temporary files removed."),
    ("SIGINT", 130, "Interrupted (Ctrl-C); temporary files removed."),
])  # fmt: skip
@pytest.mark.parametrize("command", ["run", "classify"])
def test_signal_ends_cleanly(command, how, code, line, big_workload, workload_crops, tiny_model, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    if command == "run":
        args, journal = run_args(big_workload, tiny_model, out), out / "out.json.journal"
    else:
        args, journal = classify_args(workload_crops, tiny_model, out), out / "probs.csv.journal"
    process, seen, stderr = interrupt(args, tmp_path, journal, how)
    assert process.returncode == code, stderr
    assert stderr.strip().splitlines() == [line], stderr  # one line: no worker traceback, no warning
    assert wait_until(lambda: not any(alive(pid) for pid in seen), timeout=10), [p for p in seen if alive(p)]
    assert leftovers(out) == []
    assert journal.is_file()  # kept for the next run
    assert not (out / "out.json").exists() and not (out / "probs.csv").exists()


@pytest.mark.parametrize("command", ["run", "classify"])
def test_workers_die_with_a_killed_parent(command, big_workload, workload_crops, tiny_model, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    if command == "run":
        args, journal = run_args(big_workload, tiny_model, out), out / "out.json.journal"
    else:
        args, journal = classify_args(workload_crops, tiny_model, out), out / "probs.csv.journal"
    process, seen, _ = interrupt(args, tmp_path, journal, "SIGKILL")
    assert process.returncode == -signal.SIGKILL
    # the workers (and then the resource tracker) go within a few seconds, not after a minute
    assert wait_until(lambda: not any(alive(pid) for pid in seen), timeout=10), [p for p in seen if alive(p)]


@pytest.mark.parametrize("command", ["run", "classify"])
def test_ctrl_c_while_the_workers_start(command, big_workload, workload_crops, tiny_model, tmp_path):
    """Ctrl-C as soon as the first child process appears: workers still starting up ignore it too."""
    out = tmp_path / "out"
    out.mkdir()
    if command == "run":
        args, journal = run_args(big_workload, tiny_model, out), out / "out.json.journal"
    else:
        args, journal = classify_args(workload_crops, tiny_model, out), out / "probs.csv.journal"
    process, seen, stderr = interrupt(args, tmp_path, journal, "SIGINT", early=True)
    assert process.returncode == 130, stderr
    assert stderr.strip().splitlines() == ["Interrupted (Ctrl-C); temporary files removed."], stderr
    assert wait_until(lambda: not any(alive(pid) for pid in seen), timeout=10), [p for p in seen if alive(p)]
    assert leftovers(out) == []
