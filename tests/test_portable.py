"""Windows by construction: the portable paths of ``megaclassifier.platform``, forced on Linux.

``MEGACLASSIFIER_PORTABLE=1`` makes every worker take the path Windows takes:
crops pickled through the pool's pipe instead of shared memory, the parent's
death noticed through multiprocessing's sentinel instead of ``PR_SET_PDEATHSIG``,
``spawn`` for every worker pool, no ``pthread_sigmask``. The whole ``run`` suite
(``tests/test_run.py``) and the killed-parent tests run again that way in a
subprocess. ``pytest -k portable`` runs these tests alone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from megaclassifier import platform
from megaclassifier.crop.core import CutImage
from megaclassifier.run import shm

REPO = Path(__file__).resolve().parents[1]


def _image() -> CutImage[np.ndarray]:
    crops = [(f"a.jpg___crop{i:02d}_md.jpg", np.full((4, 4, 3), i, np.uint8)) for i in range(3)]
    return CutImage(file="a.jpg", crops=crops)  # type: ignore[call-arg]


def test_portable_crops_come_back_through_the_pipe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(platform.PORTABLE_ENV, "1")
    assert not platform.shared_memory_handover()
    assert platform.worker_start_method() == "spawn"
    image = _image()
    packed = shm.pack(image)
    assert packed.block is None  # no shared memory: the crops stay in the (pickled) result
    assert shm.unpack(packed) is packed.image
    assert [a.tolist() for _, a in shm.unpack(packed).crops] == [a.tolist() for _, a in image.crops]


def test_portable_off_uses_shared_memory_on_posix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(platform.PORTABLE_ENV, raising=False)
    if os.name != "posix":
        pytest.skip("shared-memory hand-over is the POSIX path")
    image = _image()
    packed = shm.pack(image)
    assert packed.block is not None and packed.shape == (3, 4, 4, 3)
    assert all(a is None for _, a in packed.image.crops)
    back = shm.unpack(packed)
    assert [a.tolist() for _, a in back.crops] == [a.tolist() for _, a in image.crops]
    assert not Path("/dev/shm", packed.block.lstrip("/")).exists()  # removed once read


_PARENT = textwrap.dedent(
    """
    import multiprocessing, os, sys, threading, time
    from concurrent.futures import ProcessPoolExecutor
    from megaclassifier.workers import worker_setup

    def report():
        return os.getpid(), sorted(t.name for t in threading.enumerate())

    if __name__ == "__main__":
        pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=worker_setup, initargs=(os.getpid(),))
        pid, threads = pool.submit(report).result()
        print(pid, ",".join(threads), flush=True)
        time.sleep(600)
    """
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.is_file() and stat.read_text().split(") ")[-1].startswith("Z"))


@pytest.mark.parametrize("portable", [True, False], ids=["portable", "linux-fast-path"])
def test_portable_worker_dies_with_its_killed_parent(portable: bool, tmp_path: Path) -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("kills with SIGKILL and reads /proc")
    script = tmp_path / "parent.py"
    script.write_text(_PARENT, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    env[platform.PORTABLE_ENV] = "1" if portable else "0"
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert parent.stdout is not None
        pid_text, threads = parent.stdout.readline().split()
        worker = int(pid_text)
        # the portable path watches the parent's sentinel in a thread; the Linux one needs none
        assert ("parent-watch" in threads.split(",")) is portable, threads
        assert _alive(worker)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 10
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(worker), "the worker outlived its killed parent"
    finally:
        parent.kill()
        parent.wait()


@pytest.mark.slow
def test_portable_run_suite_passes_with_the_portable_paths_forced() -> None:
    """tests/test_run.py and the killed-parent tests, with MEGACLASSIFIER_PORTABLE=1 (workers spawn)."""
    env = {**os.environ, platform.PORTABLE_ENV: "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-x",
            "-p",
            "no:cacheprovider",
            "tests/test_run.py",
            "tests/test_signals.py::test_workers_die_with_a_killed_parent",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    tail = (result.stdout + result.stderr)[-3000:]
    assert result.returncode == 0, tail
    assert " passed" in tail and " failed" not in tail and "error" not in tail.lower().split("passed")[-1], tail
