"""The CUDA paths of the torch engine and of ``run``, on a real GPU.

Skipped where torch sees no CUDA device; ``MEGACLASSIFIER_REQUIRE_GPU=1``
(``make test-gpu``) turns the skip into a failure, for GPU machines. The same
code paths (staging buffers, uint8 upload and on-device normalisation, one
batch in flight) also run on the CPU in test_engines.py and test_run.py.

Tolerances: the engine turns cuDNN's TF32 convolutions off in fp32, so fp32
probabilities on the GPU are compared with the CPU's within 1e-4 (kernels sum
in other orders). The seeded B0 is far more sensitive to rounding than a
trained model (bf16 moves its probabilities by up to 0.36 on the CPU), so
fp16/bf16 are checked for agreement on the tiny model (within 1e-2) and for
finite, normalised output on the B0.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from models import B0_CLASSES, B0_SIZE, tiny_expected
from PIL import Image

from megaclassifier.cli import cli
from megaclassifier.engines import open_engine
from megaclassifier.preprocess import load_crop, normalize, resize_and_crop

torch = pytest.importorskip("torch")

REQUIRE_GPU = os.environ.get("MEGACLASSIFIER_REQUIRE_GPU") == "1"
HAS_CUDA = torch.cuda.is_available()
if REQUIRE_GPU and not HAS_CUDA:
    raise RuntimeError("MEGACLASSIFIER_REQUIRE_GPU=1 but torch sees no CUDA device")
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU (make test-gpu on one)")]


def crops(real_crops: Path, count: int = 16) -> list[Path]:
    return sorted(real_crops.iterdir())[:count]


def float_batch(real_crops: Path) -> np.ndarray:
    return np.stack([load_crop(p, B0_SIZE) for p in crops(real_crops)])


def pixel_batch(real_crops: Path) -> np.ndarray:
    return np.stack([resize_and_crop(Image.open(p), B0_SIZE) for p in crops(real_crops)])


@pytest.fixture(scope="module")
def cpu_probs(b0_checkpoint: Path, real_crops: Path) -> np.ndarray:
    return open_engine(b0_checkpoint, device="cpu", backend="torch", image_size=B0_SIZE).predict(
        float_batch(real_crops)
    )


def assert_close_same_top1(got: np.ndarray, expected: np.ndarray, tolerance: float) -> None:
    assert got.shape == expected.shape == (expected.shape[0], B0_CLASSES)
    assert np.abs(got - expected).max() <= tolerance
    ordered = np.sort(expected, axis=1)
    clear = ordered[:, -1] - ordered[:, -2] > 2 * tolerance  # top-1 cannot flip within the tolerance
    assert clear.any()
    assert (got.argmax(axis=1)[clear] == expected.argmax(axis=1)[clear]).all()


def test_fp32_on_the_gpu_matches_the_cpu(b0_checkpoint, real_crops, cpu_probs):
    engine = open_engine(b0_checkpoint, device="cuda", image_size=B0_SIZE)
    assert (engine.backend, engine.device, engine.precision) == ("torch", "cuda:0", "fp32")
    assert torch.backends.cudnn.benchmark
    assert not torch.backends.cudnn.allow_tf32
    assert_close_same_top1(engine.predict(float_batch(real_crops)), cpu_probs, 1e-4)


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_autocast_precisions(tiny_model, b0_checkpoint, real_crops, precision):
    batch = np.random.default_rng(0).normal(0.0, 2.0, (8, 3, 32, 32)).astype(np.float32)
    tiny = open_engine(tiny_model, device="cuda", precision=precision, image_size=32)
    assert (tiny.backend, tiny.precision) == ("torch", precision)
    np.testing.assert_allclose(tiny.predict(batch), tiny_expected(batch), rtol=0, atol=1e-2)
    probs = open_engine(b0_checkpoint, device="cuda", precision=precision, image_size=B0_SIZE).predict(
        pixel_batch(real_crops)
    )
    assert probs.dtype == np.float32 and probs.shape == (16, B0_CLASSES) and np.isfinite(probs).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=0, atol=1e-5)


def test_uint8_upload_is_normalised_bit_for_bit(b0_checkpoint, real_crops):
    engine = open_engine(b0_checkpoint, device="cuda", image_size=B0_SIZE)
    pixels = pixel_batch(real_crops)
    on_device = engine._to_device(pixels)
    assert on_device.device.type == "cuda" and on_device.is_contiguous(memory_format=torch.channels_last)
    np.testing.assert_array_equal(on_device.cpu().numpy(), normalize(pixels))
    slot = engine._slots[0]
    assert slot.buffer is not None and slot.buffer.is_pinned() and slot.buffer.dtype == torch.uint8
    assert slot.uploaded is not None


def test_batches_in_flight_come_back_in_order(b0_checkpoint, real_crops):
    engine = open_engine(b0_checkpoint, device="cuda", image_size=B0_SIZE)
    pixels = pixel_batch(real_crops)
    parts = [pixels[i : i + 4] for i in range(0, 16, 4)]
    expected = [engine.predict(p) for p in parts]
    pending = [engine.submit(p) for p in parts]  # four batches queued, two staging buffers
    for got, want in zip(pending, expected, strict=True):
        np.testing.assert_allclose(got.result(), want, rtol=0, atol=1e-6)


def test_onnxruntime_cuda_provider(tiny_model, tmp_path):
    """On the tiny model (no convolutions, so no question of TF32): within 1e-5 of the exact answer."""
    ort = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("onnxruntime has no CUDAExecutionProvider here (install onnxruntime-gpu)")
    model = tmp_path / "tiny.pt"
    model.write_bytes(tiny_model.read_bytes())
    engine = open_engine(model, device="cuda", backend="onnxruntime", image_size=32)
    assert engine.backend == "onnxruntime" and engine.device == "cuda:0"
    batch = np.random.default_rng(1).normal(0.0, 2.0, (8, 3, 32, 32)).astype(np.float32)
    np.testing.assert_allclose(engine.predict(batch), tiny_expected(batch), rtol=0, atol=1e-5)


@pytest.mark.testdata
def test_run_on_the_gpu_agrees_with_the_cpu(cameratrap, b0_checkpoint, tmp_path):
    def run(device: str) -> dict:
        out = tmp_path / device
        result = CliRunner().invoke(
            cli,
            [
                str(a)
                for a in [
                    "-q",
                    "run",
                    cameratrap / "detections.json",
                    b0_checkpoint,
                    "--images-dir",
                    cameratrap / "images",
                    "--output-json",
                    out / "merged.json",
                    "--output-csv",
                    out / "probs.csv",
                    "--square-crops",
                    "--threshold",
                    0.15,
                    "--image-size",
                    B0_SIZE,
                    "--batch-size",
                    8,
                    "--num-workers",
                    2,
                    "--backend",
                    "torch",
                    "--device",
                    device,
                    "--exact",  # the same decoding on both: only the engine differs
                    "--logdir",
                    out,
                ]
            ],
        )
        assert result.exit_code == 0, result.output
        lines = (out / "probs.csv").read_text().splitlines()
        return {line.split(",")[0]: [float(v) for v in line.split(",")[1:]] for line in lines[1:]}

    gpu, cpu = run("cuda"), run("cpu")
    assert len(gpu) == 38 and sorted(gpu) == sorted(cpu)
    keys = sorted(cpu)
    assert_close_same_top1(np.array([gpu[k] for k in keys]), np.array([cpu[k] for k in keys]), 1e-4)
    merged = json.loads((tmp_path / "cuda" / "merged.json").read_text())
    classified = [d for im in merged["images"] for d in im.get("detections") or [] if "classifications" in d]
    assert len(classified) == 38


@pytest.mark.testdata
def test_gpu_decoder_on_cuda_matches_its_cpu_run(cameratrap):
    """nvjpeg and the CUDA resize against the same code on the CPU (libjpeg-turbo): the GPU decode path.

    Tolerance (mean absolute difference, 0-255 levels, per crop at 300 px): 2.0, not yet
    measured on a GPU (IDCT and float resize rounding differ; the CPU run is within 1.98 of --exact).
    """
    from megaclassifier.crop.core import CutOptions
    from megaclassifier.crop.crop import plan_crops, resolve_detector
    from megaclassifier.formats.detections import load_detections
    from megaclassifier.run.gpu_decode import gpu_stream
    from megaclassifier.run.prepare import PrepareOptions

    results = load_detections(cameratrap / "detections.json")
    plans = list(plan_crops(results, ".", threshold=0.15, detector=resolve_detector(results, None)))
    options = PrepareOptions(CutOptions(str(cameratrap / "images"), square_crops=True, min_side=300), 300)

    def decode(device: str) -> tuple[dict, dict]:
        images = list(gpu_stream(plans, options, device))
        crops = {(im.file, p.index): a for im in images for p, a in im.crops}
        return crops, {im.file: im.gpu_fallback for im in images if im.gpu_fallback}

    (cuda, cuda_fallbacks), (cpu, cpu_fallbacks) = decode("cuda"), decode("cpu")
    assert sorted(cuda) == sorted(cpu) and len(cpu) == 38
    assert cuda_fallbacks == cpu_fallbacks and sorted(cpu_fallbacks) == [
        "african_elephants_cmyk.jpg",
        "african_elephants_truncated_file.jpg",
    ]
    decoded_on_gpu = [k for k in cuda if k[0] not in cpu_fallbacks]
    assert all(cuda[k].device.type == "cuda" for k in decoded_on_gpu)
    for key in cuda:
        difference = (cuda[key].cpu().to(torch.int16) - cpu[key].to(torch.int16)).abs().float().mean().item()
        assert difference <= 2.0, key
