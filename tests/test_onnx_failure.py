"""Issue 22, item 7: a model ONNX cannot export runs with torch after one line, and the failure is remembered.

The model (built here) uses ``torch.special.erfcx``, which opset 17 does not have: torch's
exporter raises and prints its graph dump (nine lines, on stdout). The CLI runs in a
subprocess so that what reaches the real file descriptors 1 and 2 is seen.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from megaclassifier.engines import onnx_check

REPO = Path(__file__).resolve().parents[1]
UNSUPPORTED = "Exporting the operator 'aten::special_erfcx' to ONNX opset version 17 is not supported"


@pytest.fixture
def erfcx_model(tmp_path: Path) -> Path:
    import torch

    class Erfcx(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(3, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(torch.special.erfcx(x.mean((2, 3))))

    path = tmp_path / "erfcx.pt"
    torch.jit.save(torch.jit.script(Erfcx().eval()), str(path))
    crops = tmp_path / "crops"
    crops.mkdir()
    Image.new("RGB", (20, 20), (90, 120, 150)).save(crops / "a.jpg___crop00_md_v5a.0.0.pt.jpg")
    return path


def classify(model: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    args = [sys.executable, "-m", "megaclassifier", *extra, "classify", str(model), str(model.parent / "crops"),
            str(out), "--image-size", "32", "--num-workers", "0"]  # fmt: skip
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=300, check=False)


def test_a_failed_export_is_one_line_then_torch_and_is_not_tried_again(erfcx_model: Path) -> None:
    first = classify(erfcx_model, erfcx_model.parent / "p1.csv", "-q")
    assert first.returncode == 0, first.stderr
    assert first.stdout == ""  # no graph dump
    name = next(erfcx_model.parent.glob("erfcx.pt.*.32px.onnx.failed.json")).name
    record = erfcx_model.parent / name
    lines = first.stderr.splitlines()
    assert lines[0] == (
        f"{erfcx_model}: cannot export to ONNX ({UNSUPPORTED}); use --backend torch; running with torch instead"
    )
    assert len(lines) == 2 and lines[1].startswith(f"1 of 1 crops classified into {erfcx_model.parent / 'p1.csv'}")
    assert "[32 px, torch fp32 on cpu]" in lines[1]
    import torch

    assert json.loads(record.read_text())["error"] == UNSUPPORTED
    assert json.loads(record.read_text())["torch"] == torch.__version__
    assert list(erfcx_model.parent.glob("*.onnx")) == []  # nothing half-written

    second = classify(erfcx_model, erfcx_model.parent / "p2.csv", "--verbose")
    assert second.returncode == 0, second.stderr
    assert second.stdout == ""
    assert "exporting erfcx.pt to ONNX" not in second.stderr  # not tried again
    assert (
        f"{erfcx_model}: cannot export to ONNX ({UNSUPPORTED}; remembered in {record}, delete it to try again); "
        "use --backend torch; running with torch instead"
    ) in second.stderr
    assert (erfcx_model.parent / "p1.csv").read_text() == (erfcx_model.parent / "p2.csv").read_text()


def test_the_memory_is_for_this_model_and_this_torch(tmp_path: Path) -> None:
    onnx_path = tmp_path / "m.pt.0123456789abcdef.32px.onnx"
    assert onnx_check.failed_before(onnx_path, "a" * 64) is None
    assert onnx_check.record_failure(onnx_path, "a" * 64, "boom") == onnx_check.failure_path(onnx_path)
    assert onnx_check.failed_before(onnx_path, "a" * 64) == "boom"
    assert onnx_check.failed_before(onnx_path, "b" * 64) is None  # another model file
    record = json.loads(onnx_check.failure_path(onnx_path).read_text())
    onnx_check.failure_path(onnx_path).write_text(json.dumps({**record, "torch": "0.0.1"}))
    assert onnx_check.failed_before(onnx_path, "a" * 64) is None  # another exporter: tried again
    onnx_check.failure_path(onnx_path).write_text("[" * 100_000)
    assert onnx_check.failed_before(onnx_path, "a" * 64) is None  # a damaged record is ignored
