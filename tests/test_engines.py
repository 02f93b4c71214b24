"""Engines: model loading, devices, backends, ONNX export and cache, precisions, features."""

from __future__ import annotations

import re
import shutil
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from models import B0_CLASSES, B0_SIZE, TINY_NAMES, build_b0, tiny_expected
from PIL import Image

from megaclassifier.engines import choose_backend, onnx_engine, open_engine
from megaclassifier.errors import MegaClassifierError, ModelError
from megaclassifier.hardware import available_cpus, check_precision, parse_device, physical_cpu_count, resolve_device
from megaclassifier.models import resolve_model
from megaclassifier.models.loading import ARCHITECTURES, _arch_signatures, infer_arch, load_model, model_kind
from megaclassifier.preprocess import load_crop

torch = pytest.importorskip("torch")
NO_CUDA = not torch.cuda.is_available()


def crop_batch(crops: Path, size: int, count: int = 12) -> np.ndarray:
    return np.stack([load_crop(p, size) for p in sorted(crops.iterdir())[:count]])


@pytest.fixture
def private_b0(b0_checkpoint: Path, b0_torchscript: Path, tmp_path: Path) -> tuple[Path, Path]:
    """Copies of the B0 files in a fresh folder, so ONNX caches start empty."""
    return Path(shutil.copy(b0_checkpoint, tmp_path)), Path(shutil.copy(b0_torchscript, tmp_path))


# devices, precisions, backends ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("auto", "auto"),
        ("cpu", "cpu"),
        ("CPU", "cpu"),
        ("cuda", "cuda"),
        ("cuda:1", "cuda:1"),
        ("0", "cuda:0"),
        (2, "cuda:2"),
        (" 3 ", "cuda:3"),
    ],
)
def test_parse_device(spec, expected):
    assert parse_device(spec) == expected


@pytest.mark.parametrize("spec", ["gpu", "cuda:", "cuda:x", "-1", "mps", ""])
def test_parse_device_rejects(spec):
    with pytest.raises(ValueError, match=r"use auto, cpu, cuda, cuda:N or N"):
        parse_device(spec)


@pytest.mark.skipif(not NO_CUDA, reason="this machine has CUDA")
def test_resolve_device_without_cuda():
    assert resolve_device("auto") == "cpu"
    assert resolve_device("cpu") == "cpu"
    for spec in ("cuda", "cuda:0", "0"):
        with pytest.raises(MegaClassifierError) as info:
            resolve_device(spec)
        assert str(info.value) == f"--device {spec}: CUDA is not available on this machine; use --device cpu or auto"


def test_precision_checks():
    check_precision("fp32", "cpu")
    check_precision("bf16", "cpu")
    with pytest.raises(MegaClassifierError) as info:
        check_precision("fp16", "cpu")
    assert str(info.value) == "--precision fp16 needs a CUDA device; on the CPU use bf16 or fp32"


@pytest.mark.parametrize(
    ("backend", "device", "precision", "expected"),
    [
        ("auto", "cpu", "fp32", "onnxruntime"),
        ("auto", "cpu", "bf16", "torch"),
        ("auto", "cuda:0", "fp32", "torch"),
        ("auto", "cuda:0", "fp16", "torch"),
        ("torch", "cpu", "fp32", "torch"),
        ("onnxruntime", "cpu", "fp32", "onnxruntime"),
    ],
)
def test_choose_backend(backend, device, precision, expected):
    assert choose_backend(backend, device, precision) == expected


def test_onnxruntime_is_fp32_only():
    with pytest.raises(MegaClassifierError) as info:
        choose_backend("onnxruntime", "cpu", "bf16")
    assert str(info.value) == "--backend onnxruntime runs fp32 only; use --backend torch for bf16"


def test_thread_counts():
    assert 1 <= physical_cpu_count() <= available_cpus()


# loading ----------------------------------------------------------------------------------------------------


def test_model_kind(tiny_model, b0_checkpoint, b0_torchscript, tmp_path):
    assert model_kind(tiny_model) == "torchscript"
    assert model_kind(b0_torchscript) == "torchscript"
    assert model_kind(b0_checkpoint) == "checkpoint"
    text = tmp_path / "labels.json"
    text.write_text('{"0": "deer"}')
    with pytest.raises(ModelError) as info:
        model_kind(text)
    assert str(info.value) == f"{text}: not a PyTorch model file (neither TorchScript nor a torch.save checkpoint)"
    with pytest.raises(ModelError, match=r": no such model file$"):
        model_kind(tmp_path / "missing.pt")


def test_arch_signatures_are_distinct_and_b0_b3_are_recognised():
    assert sorted(_arch_signatures().values()) == sorted(ARCHITECTURES)
    assert infer_arch(build_b0().state_dict()) == "efficientnet-b0"
    from efficientnet_pytorch import EfficientNet

    b3 = EfficientNet.from_name("efficientnet-b3", num_classes=169).state_dict()
    assert infer_arch(b3) == "efficientnet-b3"
    assert infer_arch({"fc.weight": torch.zeros(2, 2)}) is None


def test_loaded_models_know_their_architecture(b0_checkpoint, b0_torchscript, tiny_model):
    assert load_model(b0_checkpoint).arch == "efficientnet-b0"
    assert load_model(b0_torchscript).arch == "efficientnet-b0"
    assert load_model(tiny_model).arch is None


def test_truncated_torchscript_is_a_one_line_error(b0_torchscript, tmp_path):
    broken = tmp_path / "broken_compiled.pt"
    broken.write_bytes(b0_torchscript.read_bytes()[:50000])
    with pytest.raises(ModelError) as info:
        open_engine(broken, device="cpu")
    message = str(info.value)
    assert message.startswith(f"{broken}: ") and "\n" not in message


def test_zip_that_is_no_model(tmp_path):
    path = tmp_path / "model.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(ModelError) as info:
        open_engine(path, device="cpu")
    assert str(info.value) == f"{path}: a zip archive, but neither a TorchScript model nor a torch.save checkpoint"


def test_checkpoint_of_unknown_weights(tmp_path):
    path = tmp_path / "weird.pt"
    torch.save({"model": {"layer.weight": torch.zeros(3, 3)}}, path)
    with pytest.raises(ModelError) as info:
        open_engine(path, device="cpu")
    assert str(info.value) == (
        f"{path}: cannot tell which EfficientNet these weights are; give --arch (one of {', '.join(ARCHITECTURES)})"
    )


def test_checkpoint_with_wrong_arch(b0_checkpoint):
    with pytest.raises(ModelError) as info:
        open_engine(b0_checkpoint, device="cpu", arch="efficientnet-b3")
    message = f"{b0_checkpoint}: --arch efficientnet-b3 given, but the weights are those of efficientnet-b0"
    assert str(info.value) == message


def test_checkpoint_with_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": {"_fc.weight": torch.zeros(2, 2)}, "extra": Path("x")}, path)
    with pytest.raises(ModelError, match=r"^.*evil\.pt: cannot load as a checkpoint \(.*"):
        open_engine(path, device="cpu")


def test_dataparallel_prefix_and_bare_state_dict(b0_checkpoint, tmp_path):
    state = torch.load(b0_checkpoint, weights_only=False)["model"]
    prefixed = tmp_path / "dp.pt"
    torch.save({"module." + k: v for k, v in state.items()}, prefixed)
    engine = open_engine(prefixed, device="cpu", backend="torch", image_size=B0_SIZE)
    assert (engine.arch, engine.num_classes) == ("efficientnet-b0", B0_CLASSES)


def test_wrong_number_of_outputs(tiny_model):
    with pytest.raises(ModelError) as info:
        open_engine(tiny_model, device="cpu", num_classes=169)
    assert str(info.value) == f"{tiny_model}: the model has 4 outputs, expected 169"


def test_image_size_defaults(tiny_model, b0_checkpoint, caplog):
    caplog.set_level("INFO", logger="megaclassifier")
    assert open_engine(tiny_model, device="cpu", backend="torch").image_size == 224
    assert "image size 224 px (architecture not recognised" in caplog.text
    with pytest.raises(ModelError, match="expected 99"):  # fails after choosing the size, before any backend
        open_engine(b0_checkpoint, device="cpu", backend="torch", num_classes=99)
    assert "image size 224 px (native size of efficientnet-b0; set --image-size to change)" in caplog.text
    assert open_engine(b0_checkpoint, device="cpu", backend="torch", image_size=B0_SIZE).image_size == B0_SIZE


def test_named_model_not_downloaded(tmp_path, monkeypatch):
    monkeypatch.setenv("MEGACLASSIFIER_CACHE_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelError) as info:
        resolve_model("megaclassifier-v0.1")
    expected = tmp_path / "models" / "megaclassifier-v0.1" / "megaclassifier_v0.1_efficientnet-b3_compiled.pt"
    assert str(info.value) == (
        f"megaclassifier-v0.1: not downloaded ({expected} is missing); "
        "run `megaclassifier download megaclassifier-v0.1` first"
    )


# running ----------------------------------------------------------------------------------------------------


def test_tiny_model_exact_probabilities(tiny_model, real_crops):
    batch = crop_batch(real_crops, 300)
    for backend in ("torch", "onnxruntime"):
        engine = open_engine(tiny_model, device="cpu", backend=backend, image_size=300)
        assert (engine.backend, engine.num_classes, engine.device) == (backend, len(TINY_NAMES), "cpu")
        probs = engine.predict(batch)
        assert probs.dtype == np.float32 and probs.shape == (len(batch), 4)
        # float32 means over 300 x 300 pixels against float64 ones: agreement within 1e-5
        np.testing.assert_allclose(probs, tiny_expected(batch), rtol=0, atol=1e-5)


def test_checkpoint_and_torchscript_agree(b0_checkpoint, b0_torchscript, real_crops):
    """Same seeded B0 as checkpoint and as traced TorchScript: probabilities agree within 1e-6."""
    batch = crop_batch(real_crops, B0_SIZE)
    from_checkpoint = open_engine(b0_checkpoint, device="cpu", backend="torch", image_size=B0_SIZE).predict(batch)
    from_script = open_engine(b0_torchscript, device="cpu", backend="torch", image_size=B0_SIZE).predict(batch)
    np.testing.assert_allclose(from_checkpoint, from_script, rtol=0, atol=1e-6)
    assert from_checkpoint.std(axis=0).max() > 1e-3  # the model does look at its input
    np.testing.assert_allclose(from_checkpoint.sum(axis=1), 1.0, atol=1e-6)


def test_onnxruntime_matches_torch_and_caches_the_export(private_b0, real_crops, monkeypatch):
    batch = crop_batch(real_crops, B0_SIZE)
    for model in private_b0:
        reference = open_engine(model, device="cpu", backend="torch", image_size=B0_SIZE).predict(batch)
        engine = open_engine(model, device="cpu", image_size=B0_SIZE)  # auto: onnxruntime on the CPU
        assert engine.backend == "onnxruntime"
        np.testing.assert_allclose(engine.predict(batch), reference, rtol=0, atol=1e-4)
        cached = list(model.parent.glob(f"{model.name}.*.onnx"))
        assert [p.name for p in cached] == [onnx_engine.onnx_cache_name(model, B0_SIZE)]
        assert re.fullmatch(rf"{re.escape(model.name)}\.[0-9a-f]{{16}}\.64px\.onnx", cached[0].name)
        options = engine._session.get_session_options()
        assert options.intra_op_num_threads == physical_cpu_count()

    def no_export(*args, **kwargs):
        raise AssertionError("exported again")

    monkeypatch.setattr(onnx_engine, "export_onnx", no_export)
    engine = open_engine(private_b0[0], device="cpu", image_size=B0_SIZE)  # from the cache
    assert engine.backend == "onnxruntime"
    np.testing.assert_allclose(engine.predict(batch), reference, rtol=0, atol=1e-4)


def pixel_batch(crops: Path, size: int, count: int = 5) -> np.ndarray:
    from megaclassifier.preprocess import resize_and_crop

    return np.stack([resize_and_crop(Image.open(p), size) for p in sorted(crops.iterdir())[:count]])


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_uint8_pixel_batches_give_the_same_probabilities(private_b0, real_crops, backend):
    """uint8 (N, S, S, 3) in, normalised by the engine: bit for bit what the float32 batch gives."""
    from megaclassifier.preprocess import normalize

    pixels = pixel_batch(real_crops, B0_SIZE)
    engine = open_engine(private_b0[0], device="cpu", backend=backend, image_size=B0_SIZE)
    expected = engine.predict(normalize(pixels))
    np.testing.assert_array_equal(engine.predict(pixels), expected)
    if backend == "torch":
        engine._stage = True  # the GPU path: the uint8 batch is uploaded, then normalised on the device
        np.testing.assert_array_equal(engine.predict(pixels), expected)
        normalised = engine._to_device(pixels)
        assert normalised.is_contiguous(memory_format=torch.channels_last)
        np.testing.assert_array_equal(normalised.numpy(), normalize(pixels))


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_submitted_batches_come_back_in_order(private_b0, real_crops, backend):
    batch = crop_batch(real_crops, B0_SIZE, 9)
    engine = open_engine(private_b0[0], device="cpu", backend=backend, image_size=B0_SIZE)
    expected = [engine.predict(batch[i : i + 3]) for i in (0, 3, 6)]
    pending = [engine.submit(batch[i : i + 3]) for i in (0, 3, 6)]
    for got, want in zip(pending[::-1], expected[::-1], strict=True):  # results read in any order
        np.testing.assert_array_equal(got.result(), want)
        assert got.result() is got.result()
    assert engine.submit(batch[:0]).result().shape == (0, B0_CLASSES)


def test_pipelined_submits_the_next_batch_before_reading_a_result():
    from megaclassifier.engines.base import Pending, pipelined

    events: list[str] = []

    def submit(batch: np.ndarray) -> Pending:
        name = f"b{int(batch[0, 0])}"
        events.append(f"submit {name}")

        def fetch() -> np.ndarray:
            events.append(f"result {name}")
            return batch * 10

        return Pending(fetch)

    batches = [(tag, np.full((2, 1), i, np.float32)) for i, tag in enumerate("xyz")]
    out = [(tag, values[:, 0].tolist()) for tag, values in pipelined(submit, batches)]
    assert out == [("x", [0.0, 0.0]), ("y", [10.0, 10.0]), ("z", [20.0, 20.0])]
    assert events == ["submit b0", "submit b1", "result b0", "submit b2", "result b1", "result b2"]
    assert list(pipelined(submit, [])) == []


@pytest.mark.parametrize(
    "batch",
    [
        np.zeros((2, B0_SIZE, B0_SIZE, 3), np.float32),
        np.zeros((2, 3, B0_SIZE, B0_SIZE), np.uint8),
        np.zeros((2, 3, 32, 32), np.float32),
        np.zeros((3, B0_SIZE, B0_SIZE), np.float32),
    ],
)
def test_a_batch_of_the_wrong_shape_is_refused(b0_checkpoint, batch):
    engine = open_engine(b0_checkpoint, device="cpu", backend="torch", image_size=B0_SIZE)
    with pytest.raises(ValueError) as info:
        engine.predict(batch)
    assert str(info.value) == (
        f"expected a float32 (N, 3, 64, 64) or uint8 (N, 64, 64, 3) batch, got {batch.dtype} {batch.shape}"
    )


def test_onnx_cache_falls_back_to_user_cache(private_b0, tmp_path, monkeypatch):
    checkpoint = private_b0[0]
    cache = tmp_path / "usercache"
    monkeypatch.setenv("MEGACLASSIFIER_CACHE_DIR", str(cache))
    real_mkstemp = onnx_engine.tempfile.mkstemp

    def read_only_model_folder(*args, **kwargs):
        if Path(kwargs["dir"]) == checkpoint.parent:
            raise PermissionError(13, "Permission denied")
        return real_mkstemp(*args, **kwargs)

    monkeypatch.setattr(onnx_engine.tempfile, "mkstemp", read_only_model_folder)
    engine = open_engine(checkpoint, device="cpu", image_size=B0_SIZE)
    assert engine.backend == "onnxruntime"
    assert engine.onnx_path == cache / "onnx" / onnx_engine.onnx_cache_name(checkpoint, B0_SIZE)
    assert not list(checkpoint.parent.glob("*.onnx"))


def test_bf16_on_the_cpu(tiny_model, b0_checkpoint, real_crops):
    batch = crop_batch(real_crops, 300, 6)
    engine = open_engine(tiny_model, device="cpu", precision="bf16", image_size=300)
    assert (engine.backend, engine.precision) == ("torch", "bf16")
    bf16 = engine.predict(batch)
    assert bf16.dtype == np.float32
    np.testing.assert_allclose(bf16, tiny_expected(batch), rtol=0, atol=0.02)  # bf16 keeps ~3 digits
    # B0: autocast is really on (results move), rows still sum to one
    small = crop_batch(real_crops, B0_SIZE, 6)
    fp32 = open_engine(b0_checkpoint, device="cpu", backend="torch", image_size=B0_SIZE).predict(small)
    b0_bf16 = open_engine(b0_checkpoint, device="cpu", precision="bf16", image_size=B0_SIZE).predict(small)
    assert 1e-4 < np.abs(b0_bf16 - fp32).max() < 0.25
    np.testing.assert_allclose(b0_bf16.sum(axis=1), 1.0, atol=1e-5)


def test_fp16_on_the_cpu_is_refused(b0_checkpoint):
    with pytest.raises(MegaClassifierError, match="^--precision fp16 needs a CUDA device"):
        open_engine(b0_checkpoint, device="cpu", precision="fp16")


def test_bad_batch_shape(tiny_model):
    engine = open_engine(tiny_model, device="cpu", backend="torch", image_size=32)
    with pytest.raises(
        ValueError,
        match=r"^expected a float32 \(N, 3, 32, 32\) or uint8 \(N, 32, 32, 3\) batch, "
        r"got float32 \(1, 3, 31, 31\)$",
    ):
        engine.predict(np.zeros((1, 3, 31, 31), np.float32))
    assert engine.predict(np.zeros((0, 3, 32, 32), np.float32)).shape == (0, 4)


# features ---------------------------------------------------------------------------------------------------


def test_features_of_checkpoint_and_torchscript_agree(b0_checkpoint, b0_torchscript, real_crops):
    batch = crop_batch(real_crops, B0_SIZE, 6)
    from efficientnet_pytorch import EfficientNet

    model = EfficientNet.from_name("efficientnet-b0", num_classes=B0_CLASSES).eval()
    model.load_state_dict(torch.load(b0_checkpoint, weights_only=False)["model"])
    with torch.inference_mode():
        x = torch.from_numpy(batch)
        expected = model._avg_pooling(model.extract_features(x)).flatten(start_dim=1).numpy()
    from_checkpoint = open_engine(b0_checkpoint, device="cpu", image_size=B0_SIZE, features=True)
    from_script = open_engine(b0_torchscript, device="cpu", image_size=B0_SIZE, features=True)
    assert from_checkpoint.feature_size == from_script.feature_size == 1280
    # the reference README's recipe on the same weights. Features reach ~200 on these crops and float32
    # rounding grows through 16 blocks of random weights: the tolerance is 1e-4 of the largest feature.
    scale = float(np.abs(expected).max())
    assert np.abs(from_checkpoint.features(batch) - expected).max() <= 1e-4 * scale
    assert np.abs(from_script.features(batch) - expected).max() <= 1e-4 * scale
    # the script engine still predicts with its own head
    np.testing.assert_allclose(from_script.predict(batch).sum(axis=1), 1.0, atol=1e-6)


def test_tiny_model_features_are_channel_means(tiny_model, real_crops):
    batch = crop_batch(real_crops, 64, 3)
    engine = open_engine(tiny_model, device="cpu", image_size=64, features=True)
    np.testing.assert_allclose(engine.features(batch), batch.astype(np.float64).mean(axis=(2, 3)), rtol=0, atol=1e-5)


def test_torchscript_without_a_linear_head_gives_no_features(tmp_path):
    class NoHead(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.mean(dim=(2, 3)) * 2.0

    path = tmp_path / "nohead.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.script(NoHead()).save(str(path))
    engine = open_engine(path, device="cpu", image_size=32, features=True)
    with pytest.raises(ModelError) as info:
        engine.features(np.zeros((1, 3, 32, 32), np.float32))
    assert str(info.value) == (
        f"{path}: no final linear layer found in this TorchScript model; "
        "features need the checkpoint (as megaclassifier_v0.1_efficientnet-b3.pt)"
    )


def test_gpu_staging_path_runs_on_the_cpu(b0_checkpoint, real_crops):
    """The CUDA input path (two staging buffers in turn, non-blocking copy, channels-last), without pinning."""
    engine = open_engine(b0_checkpoint, device="cpu", backend="torch", image_size=B0_SIZE)
    batch = crop_batch(real_crops, B0_SIZE, 6)
    expected = engine.predict(batch)
    engine._stage = True
    # another batch size may take another oneDNN kernel: 1e-5
    np.testing.assert_allclose(engine.predict(batch[:4]), expected[:4], rtol=0, atol=1e-5)
    first, second = engine._slots
    assert first.buffer is not None and first.buffer.shape[0] == 4 and second.buffer is None
    engine.predict(batch[:2])
    assert second.buffer is not None and second.buffer.shape[0] == 2
    buffer = first.buffer
    np.testing.assert_allclose(engine.predict(batch[:3]), expected[:3], rtol=0, atol=1e-5)
    assert first.buffer is buffer  # reused: large enough
    np.testing.assert_allclose(engine.predict(batch), expected, rtol=0, atol=1e-5)
    assert second.buffer.shape[0] == 6  # grown
    pixels = np.stack(
        [np.asarray(Image.open(p).convert("RGB").resize((B0_SIZE, B0_SIZE))) for p in sorted(real_crops.iterdir())[:3]]
    )
    engine.predict(pixels)
    assert first.buffer.dtype == torch.uint8 and first.buffer.shape == (3, B0_SIZE, B0_SIZE, 3)


@pytest.mark.parametrize(("cpus", "cpu", "gpu"), [(1, 1, 1), (2, 1, 1), (16, 1, 15), (64, 1, 32)])
def test_run_decoding_workers_by_default(monkeypatch, cpus, cpu, gpu):
    from megaclassifier.run import prepare as pipeline

    monkeypatch.setattr(pipeline, "available_cpus", lambda: cpus)
    assert (pipeline.default_run_workers("cpu"), pipeline.default_run_workers("cuda:0")) == (cpu, gpu)


def test_default_workers_depend_on_the_device(monkeypatch):
    from megaclassifier.classify import loader

    monkeypatch.setattr(loader, "available_cpus", lambda: 16)
    monkeypatch.setattr(loader, "physical_cpu_count", lambda: 8)
    assert (loader.default_num_workers("cuda:0"), loader.default_num_workers(None)) == (8, 8)
    assert loader.default_num_workers("cpu") == 2
    monkeypatch.setattr(loader, "physical_cpu_count", lambda: 16)
    assert loader.default_num_workers("cpu") == 0
