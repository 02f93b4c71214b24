"""The ONNX check's proof: a passed check is recorded beside the export and not run again.

Seeded B0 at 64 px, copied to a private folder. The second open must not load the
model in torch (``load_model`` is made to fail) and gives the same probabilities;
a proof that no longer holds (another export, another ONNX Runtime, a damaged
file) sends the open back through the full check.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from models import B0_CLASSES, B0_SIZE

from megaclassifier.engines import api, onnx_check, onnx_engine, open_engine
from megaclassifier.errors import ModelError


@pytest.fixture
def model(b0_checkpoint: Path, tmp_path: Path) -> Path:
    return Path(shutil.copyfile(b0_checkpoint, tmp_path / "b0.pt"))


def batch() -> np.ndarray:
    return np.random.default_rng(4).integers(0, 256, (3, B0_SIZE, B0_SIZE, 3), dtype=np.uint8)


def no_torch_load(*args: object, **kwargs: object) -> None:
    raise AssertionError("the model was loaded in torch: the check ran again")


def test_a_passed_check_is_not_run_again(model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = open_engine(model, device="cpu", image_size=B0_SIZE)
    expected = first.predict(batch())
    proof_file = onnx_check.proof_path(first.onnx_path)  # type: ignore[attr-defined]
    proof = json.loads(proof_file.read_text(encoding="utf-8"))
    assert proof["model_sha256"] == onnx_engine.file_sha256(model)
    assert proof["onnx_sha256"] == onnx_engine.file_sha256(first.onnx_path)  # type: ignore[attr-defined]
    assert (proof["image_size"], proof["num_classes"], proof["arch"]) == (B0_SIZE, B0_CLASSES, "efficientnet-b0")
    assert 0 <= proof["difference"] <= 1e-4

    monkeypatch.setattr(api, "load_model", no_torch_load)
    again = open_engine(model, device="cpu", image_size=B0_SIZE)
    assert (again.backend, again.num_classes, again.arch) == ("onnxruntime", B0_CLASSES, "efficientnet-b0")
    np.testing.assert_array_equal(again.predict(batch()), expected)
    with pytest.raises(ModelError, match=r"b0\.pt: the model has 5 outputs, expected 7$"):
        open_engine(model, device="cpu", image_size=B0_SIZE, num_classes=7)
    with pytest.raises(AssertionError, match="the check ran again"):  # no proof at another size
        open_engine(model, device="cpu", image_size=B0_SIZE * 2)


@pytest.mark.parametrize("change", ["onnxruntime", "export", "damaged"])
def test_a_proof_that_no_longer_holds_is_ignored(model: Path, monkeypatch: pytest.MonkeyPatch, change: str) -> None:
    engine = open_engine(model, device="cpu", image_size=B0_SIZE)
    proof_file = onnx_check.proof_path(engine.onnx_path)  # type: ignore[attr-defined]
    if change == "onnxruntime":
        monkeypatch.setattr(onnx_check, "_version", lambda runtime: "0.0.1")
    elif change == "export":
        proof = json.loads(proof_file.read_text(encoding="utf-8"))
        proof_file.write_text(json.dumps({**proof, "onnx_sha256": "0" * 64}), encoding="utf-8")
    else:
        proof_file.write_text("{not json", encoding="utf-8")
    monkeypatch.setattr(api, "load_model", no_torch_load)
    with pytest.raises(AssertionError, match="the check ran again"):
        open_engine(model, device="cpu", image_size=B0_SIZE)
