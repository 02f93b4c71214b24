"""Issue 19: two `run`s, `classify`s or `features` started on one output: the second refuses, the first is whole.

The first is started in a subprocess; as soon as it holds the output's lock, a second
command on the same output (with the same model, or another) stops at once with one line
naming the first's PID and exit 1, touching nothing; the first then completes, and its
files equal those of an undisturbed run, byte for byte (``run``'s JSON: but its completion time).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from helpers import invoke
from workload import Workload, cli_command, kill_group, make_workload, start, wait_until

from megaclassifier.formats.lock import pid_path

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not sys.platform.startswith("linux"), reason="timing on Linux")]


@pytest.fixture(scope="module")
def workload(tmp_path_factory: pytest.TempPathFactory) -> Workload:
    return make_workload(tmp_path_factory.mktemp("one_writer"), copies=12)


def run_args(workload: Workload, model: Path, out: Path, size: str = "32") -> list[object]:
    return [
        "run", workload.detections, model, "--images-dir", workload.images, "--square-crops", "--threshold", "0.15",
        "--output-json", out / "out.json", "--output-csv", out / "out.csv", "--image-size", size,
        "--batch-size", "8", "--num-workers", "0", "--logdir", out / "logs",
    ]  # fmt: skip


def classify_args(crops: Path, model: Path, out: Path, size: str = "32") -> list[object]:
    return ["classify", model, crops, out / "probs.csv", "--image-size", size, "--batch-size", "4",
            "--num-workers", "0", "--backend", "torch"]  # fmt: skip


def without_time(path: Path) -> dict:
    data = json.loads(path.read_text(encoding="utf-8"))
    del data["info"]["classification_completion_time"]
    return data


def second_refuses(first: list[object], second: list[object], output: Path, cwd: Path) -> None:
    """Start ``first``; once it holds ``output``'s lock run ``second``: it must refuse; ``first`` must finish."""
    process = start(cli_command(*first), cwd)
    try:
        assert wait_until(lambda: pid_path(output).is_file() or process.poll() is not None, timeout=60)
        assert process.poll() is None, "the first command ended before the second could start"
        result = invoke(*second)
        assert result.exit_code == 1
        assert result.output == (
            f"Error: {output}: another process (PID {process.pid}) is writing it; wait for it to end, or stop it\n"
        )
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr
    finally:
        kill_group(process)


@pytest.mark.parametrize("other_model", [False, True], ids=["same model", "another model"])
def test_a_second_run_on_one_output_refuses(workload, tiny_model, b0_torchscript, tmp_path, other_model):
    clean, out = tmp_path / "clean", tmp_path / "out"
    assert invoke(*run_args(workload, tiny_model, clean)).exit_code == 0
    second = run_args(workload, b0_torchscript, out, "64") if other_model else run_args(workload, tiny_model, out)
    second_refuses(run_args(workload, tiny_model, out), second, out / "out.json", tmp_path)
    assert (out / "out.csv").read_bytes() == (clean / "out.csv").read_bytes()
    assert without_time(out / "out.json") == without_time(clean / "out.json")
    assert sorted(p.name for p in out.iterdir()) == ["logs", "out.csv", "out.json"]  # no journal, lock or temporary
    assert len(list((out / "logs").iterdir())) == 1  # the second wrote no log


@pytest.mark.parametrize("other_model", [False, True], ids=["same model", "another model"])
def test_a_second_classify_on_one_output_refuses(workload, tiny_model, b0_torchscript, tmp_path, other_model):
    from megaclassifier.crop import crop_detections

    crops = tmp_path / "crops"
    crop_detections(
        workload.detections, crops, images_dir=workload.images, square_crops=True, threshold=0.15, logdir=tmp_path
    )
    clean, out = tmp_path / "clean", tmp_path / "out"
    assert invoke(*classify_args(crops, tiny_model, clean)).exit_code == 0
    second = classify_args(crops, b0_torchscript, out, "64") if other_model else classify_args(crops, tiny_model, out)
    second_refuses(classify_args(crops, tiny_model, out), second, out / "probs.csv", tmp_path)
    assert (out / "probs.csv").read_bytes() == (clean / "probs.csv").read_bytes()
    assert sorted(p.name for p in out.iterdir()) == ["probs.csv"]


def features_args(crops: Path, model: Path, out: Path, size: str = "32") -> list[object]:
    return ["features", model, crops, out / "features.csv", "--image-size", size, "--batch-size", "4",
            "--num-workers", "0"]  # fmt: skip


def test_a_second_features_on_one_output_refuses(workload, tiny_model, tmp_path):
    from megaclassifier.crop import crop_detections

    crops = tmp_path / "crops"
    crop_detections(
        workload.detections, crops, images_dir=workload.images, square_crops=True, threshold=0.15, logdir=tmp_path
    )
    clean, out = tmp_path / "clean", tmp_path / "out"
    assert invoke(*features_args(crops, tiny_model, clean)).exit_code == 0
    second_refuses(features_args(crops, tiny_model, out), features_args(crops, tiny_model, out), out / "features.csv",
                   tmp_path)  # fmt: skip
    assert (out / "features.csv").read_bytes() == (clean / "features.csv").read_bytes()
    assert sorted(p.name for p in out.iterdir()) == ["features.csv"]
