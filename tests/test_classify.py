"""``classify``: CSV format, crop discovery, failures, errors, through the library and the CLI."""

from __future__ import annotations

import gzip
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import PhotoSet
from helpers import invoke
from models import B0_SIZE, DETECTOR, TINY_NAMES, tiny_expected

from megaclassifier.classify import classify_crops, discover_crops
from megaclassifier.classify import loader as loader_module
from megaclassifier.cli import cli
from megaclassifier.errors import InputFileError

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

# The tiny model's probabilities on the first crop (african_elephants.jpg, detection 0) at 300 px: a
# golden record that catches any change in cropping or preprocessing (tolerance 1e-4: JPEG codec versions).
GOLDEN_FIRST_ROW = [0.50671, 0.18731, 0.29582, 0.01016]


def expected_keys(photos: PhotoSet, threshold: float = 0.15) -> list[str]:
    """Crop keys that ``crop --threshold 0.15`` makes, in detections-JSON order (computed independently)."""
    md = json.loads(photos.detections.read_text())
    keys = []
    for image in md["images"]:
        for i, det in enumerate(image.get("detections") or []):
            if det["category"] == "1" and det["conf"] >= threshold:
                keys.append(f"{image['file']}___crop{i:02d}_{DETECTOR}.jpg")
    return keys


def torchvision_batch(paths: list[Path], size: int) -> np.ndarray:
    from torchvision import transforms as T
    from torchvision.datasets.folder import pil_loader

    transform = T.Compose(
        [
            T.Resize(size, interpolation=T.InterpolationMode.BICUBIC),
            T.CenterCrop(size),
            T.ToTensor(),
            T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        ]
    )
    return np.stack([transform(pil_loader(str(p))).numpy() for p in paths])


def read_csv(path: Path) -> list[list[str]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", newline="") as f:
        text = f.read()
    assert text.endswith("\n") and "\r" not in text
    return [line.split(",") for line in text.splitlines()]


# the CSV -----------------------------------------------------------------------------------------------------


def test_classify_with_detections_json(tiny_model, tiny_categories, real_crops, photos, tmp_path):
    out = tmp_path / "probs.csv"
    result = invoke(
        "classify",
        tiny_model,
        real_crops,
        out,
        "--detections-json",
        photos.detections,
        "--classifier-categories",
        tiny_categories,
        "--image-size",
        300,
        "--num-workers",
        0,
    )
    assert result.exit_code == 0, result.output
    keys = expected_keys(photos)
    assert len(keys) == len(photos.animal_boxes()) and len(keys) in (38, 18)  # cameratrap, demo
    assert re.fullmatch(
        rf"{len(keys)} of {len(keys)} crops classified into {re.escape(str(out))} \[300 px, onnxruntime fp32 on cpu\] "
        r"in [\d.]+ s \([\d.]+ crops/s, model loading included\)\n",
        result.output,
    )
    rows = read_csv(out)
    assert rows[0] == ["path", *TINY_NAMES]
    assert [row[0] for row in rows[1:]] == keys  # JSON order x detection index, existing crops only
    for row in rows[1:]:
        assert len(row) == 5
        for value in row[1:]:
            assert str(np.float32(value)) == value  # float32 in its shortest form
    values = np.array([[float(v) for v in row[1:]] for row in rows[1:]])
    expected = tiny_expected(torchvision_batch([real_crops / k for k in keys], 300))
    np.testing.assert_allclose(values, expected, rtol=0, atol=1e-5)


@pytest.mark.testdata
def test_golden_first_row_of_the_real_images(tiny_model, cameratrap, tmp_path):
    from megaclassifier.crop import crop_detections

    md = cameratrap / "detections.json"
    crop_detections(
        md, tmp_path / "crops", images_dir=cameratrap / "images", square_crops=True, threshold=0.15, logdir=tmp_path
    )
    out = tmp_path / "probs.csv"
    result = invoke("classify", tiny_model, tmp_path / "crops", out, "-d", md, "--image-size", 300, "--num-workers", 0)
    assert result.exit_code == 0, result.output
    first = read_csv(out)[1]
    assert first[0] == f"african_elephants.jpg___crop00_{DETECTOR}.jpg"
    np.testing.assert_allclose([float(v) for v in first[1:]], GOLDEN_FIRST_ROW, rtol=0, atol=1e-4)


def test_gzip_output_and_torch_backend_agree(tiny_model, tiny_categories, real_crops, photos, tmp_path):
    plain, zipped = tmp_path / "probs.csv", tmp_path / "probs.csv.gz"
    common = [
        "--detections-json",
        photos.detections,
        "--classifier-categories",
        tiny_categories,
        "--image-size",
        300,
        "--num-workers",
        0,
    ]
    assert invoke("classify", tiny_model, real_crops, plain, *common, "--backend", "torch").exit_code == 0
    assert invoke("classify", tiny_model, real_crops, zipped, *common).exit_code == 0
    with open(zipped, "rb") as f:
        assert f.read(2) == b"\x1f\x8b"
    a, b = read_csv(plain), read_csv(zipped)
    assert [r[0] for r in a] == [r[0] for r in b]
    # float32 means of 90000 pixels, summed in another order by ONNX Runtime: within 1e-5
    np.testing.assert_allclose(
        np.array([r[1:] for r in a[1:]], float), np.array([r[1:] for r in b[1:]], float), rtol=0, atol=1e-5
    )


def test_walk_mode_sorted_forward_slashes(tiny_model, real_crops, tmp_path):
    crops = tmp_path / "walk"
    sources = sorted(real_crops.iterdir())[:4]
    (crops / "sub" / "deeper").mkdir(parents=True)
    shutil.copy(sources[0], crops / "b.jpg")
    shutil.copy(sources[1], crops / "sub" / "a.JPG")
    shutil.copy(sources[2], crops / "sub" / "deeper" / "c.jpeg")
    Image = pytest.importorskip("PIL.Image")
    Image.open(sources[3]).save(crops / "a.png")
    (crops / "notes.txt").write_text("not an image")
    shutil.copy(sources[0], crops / ".hidden.jpg")
    out = tmp_path / "walk.csv"
    result = invoke("classify", tiny_model, crops, out, "--image-size", 64, "--num-workers", 0)
    assert result.exit_code == 0, result.output
    rows = read_csv(out)
    assert rows[0] == ["path", "0", "1", "2", "3"]  # no categories file: column names from the output width
    assert [r[0] for r in rows[1:]] == ["a.png", "b.jpg", "sub/a.JPG", "sub/deeper/c.jpeg"]
    assert discover_crops(crops).keys[2] == "sub/a.JPG"


def test_workers_give_the_same_rows_as_in_process(tiny_model, real_crops, photos, tmp_path):
    outputs = []
    crops = len(photos.animal_boxes())
    for workers in (0, 2):
        out = tmp_path / f"w{workers}.csv"
        summary = classify_crops(
            tiny_model,
            real_crops,
            out,
            detections_json=photos.detections,
            image_size=64,
            batch_size=5,
            num_workers=workers,
            backend="torch",
            device="cpu",
        )
        assert (summary.crops, summary.classified, summary.failed) == (crops, crops, 0)
        outputs.append(out.read_text())
    assert outputs[0] == outputs[1]


def test_checkpoint_default_backend_matches_torch(b0_checkpoint, real_crops, tmp_path):
    onnx_out, torch_out = tmp_path / "onnx.csv", tmp_path / "torch.csv"
    for out, backend in ((onnx_out, "auto"), (torch_out, "torch")):
        result = invoke(
            "classify",
            b0_checkpoint,
            real_crops,
            out,
            "--image-size",
            B0_SIZE,
            "--backend",
            backend,
            "--num-workers",
            0,
            "--batch-size",
            7,
        )
        assert result.exit_code == 0, result.output
        assert "[efficientnet-b0, 64 px" in result.output
    a, b = read_csv(onnx_out), read_csv(torch_out)
    assert a[0] == b[0] == ["path", "0", "1", "2", "3", "4"]
    np.testing.assert_allclose(
        np.array([r[1:] for r in a[1:]], float), np.array([r[1:] for r in b[1:]], float), rtol=0, atol=1e-4
    )


def test_detections_without_detector_fall_back_to_unknown(tiny_model, tmp_path, real_crops):
    crops = tmp_path / "crops"
    (crops / "cam").mkdir(parents=True)
    source = sorted(real_crops.iterdir())[0]
    shutil.copy(source, crops / "cam" / "x.jpg___crop01_unknown.jpg")
    md = tmp_path / "md.json"
    md.write_text(
        json.dumps(
            {
                "images": [
                    {
                        "file": "cam/x.jpg",
                        "detections": [
                            {"category": "1", "conf": 0.9, "bbox": [0, 0, 1, 1]},
                            {"category": "1", "conf": 0.9, "bbox": [0, 0, 1, 1]},
                        ],
                    }
                ]
            }
        )
    )
    out = tmp_path / "out.csv"
    result = CliRunner().invoke(
        cli,
        ["classify", str(tiny_model), str(crops), str(out), "-d", str(md), "--image-size", "64", "--num-workers", "0"],
    )
    assert result.exit_code == 0, result.output
    assert f'{md} names no detector (info.detector); looking for crops named "..._unknown.jpg", as crop does' in (
        result.output
    )
    assert [r[0] for r in read_csv(out)[1:]] == ["cam/x.jpg___crop01_unknown.jpg"]


# failures and errors ----------------------------------------------------------------------------------------


def test_unreadable_crop_is_reported_and_skipped(tiny_model, crops_copy, photos, tmp_path):
    keys = expected_keys(photos)
    broken = keys[3]
    (crops_copy / broken).write_bytes(b"\xff\xd8 broken")
    out = tmp_path / "out.csv"
    result = CliRunner().invoke(
        cli,
        [
            "classify",
            str(tiny_model),
            str(crops_copy),
            str(out),
            "-d",
            str(photos.detections),
            "--image-size",
            "64",
            "--num-workers",
            "2",
            "--batch-size",
            "4",
        ],
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(
        re.fullmatch(
            rf"{re.escape(broken)}: cannot read this crop \(cannot identify image file .*\); "
            r"no row written",
            line,
        )
        for line in lines
    ), result.output
    assert lines[-1].startswith(f"{len(keys) - 1} of {len(keys)} crops classified (1 unreadable, no row) into {out} ")
    assert [r[0] for r in read_csv(out)[1:]] == [k for k in keys if k != broken]


def test_wrong_output_width_fails_before_reading_crops(tiny_model, real_crops, tmp_path, monkeypatch):
    categories = tmp_path / "three.json"
    categories.write_text(json.dumps({"0": "a", "1": "b", "2": "c"}))

    def no_reading(*args, **kwargs):
        raise AssertionError("a crop was read")

    monkeypatch.setattr(loader_module, "load_crop", no_reading)
    out = tmp_path / "out.csv"
    result = invoke("classify", tiny_model, real_crops, out, "-c", categories, "--num-workers", 0, "--image-size", 64)
    assert result.exit_code == 1
    assert result.output == (
        f"Error: {tiny_model}: the model has 4 outputs but {categories} names 3 classes; "
        "is this the right categories file?\n"
    )
    assert list(tmp_path.iterdir()) == [categories]


def test_non_contiguous_categories(tiny_model, real_crops, tmp_path):
    categories = tmp_path / "gap.json"
    categories.write_text(json.dumps({"0": "a", "1": "b", "3": "c", "4": "d"}))
    result = invoke("classify", tiny_model, real_crops, tmp_path / "out.csv", "-c", categories)
    assert result.exit_code == 1
    assert result.output == (
        f"Error: {categories}: keys must be \"0\" to \"3\" without gaps; missing ['2'], unexpected ['4']\n"
    )


def test_bad_model_file(real_crops, tmp_path):
    model = tmp_path / "model.pt"
    model.write_text("this is not a model")
    result = invoke("classify", model, real_crops, tmp_path / "out.csv")
    assert result.exit_code == 1
    assert result.output == (
        f"Error: {model}: not a PyTorch model file (neither TorchScript nor a torch.save checkpoint)\n"
    )
    assert not (tmp_path / "out.csv").exists()


def test_missing_model_is_a_usage_error(real_crops, tmp_path):
    result = invoke("classify", tmp_path / "nope.pt", real_crops, tmp_path / "out.csv")
    assert result.exit_code == 2
    assert (
        f"Invalid value for 'MODEL': '{tmp_path / 'nope.pt'}' is neither a file nor a published model name "
        "(megaclassifier-v0.1, idfg-classifier, speciesnet-v4.0.2a)"
    ) in result.output


def test_missing_crops_dir(tiny_model, tmp_path):
    result = invoke("classify", tiny_model, tmp_path / "nowhere", tmp_path / "out.csv")
    assert result.exit_code == 2
    assert f"Invalid value for 'CROPS_DIR': Directory '{tmp_path / 'nowhere'}' does not exist." in result.output
    with pytest.raises(InputFileError) as info:
        classify_crops(tiny_model, tmp_path / "nowhere", tmp_path / "out.csv")
    assert str(info.value) == f"{tmp_path / 'nowhere'}: no such folder"


def test_empty_crops_dir(tiny_model, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no crops")
    result = invoke("classify", tiny_model, empty, tmp_path / "out.csv")
    assert result.exit_code == 1
    assert result.output == f"Error: {empty}: no crops found (no .jpg, .jpeg or .png files below it)\n"


def test_no_crops_of_the_detections(tiny_model, tmp_path, photos):
    empty = tmp_path / "empty"
    empty.mkdir()
    md = photos.detections
    result = invoke("classify", tiny_model, empty, tmp_path / "out.csv", "-d", md)
    assert result.exit_code == 1
    assert result.output == (
        f"Error: {empty}: none of the crops of {md} are here; run `megaclassifier crop` with that file first\n"
    )


def test_failure_mid_run_leaves_no_output(tiny_model, real_crops, tmp_path, monkeypatch):
    from megaclassifier.engines.base import Pending
    from megaclassifier.engines.torch_engine import TorchEngine

    calls = []

    def failing_submit(self, batch):
        calls.append(len(batch))
        if len(calls) == 2:
            raise RuntimeError("boom")
        return Pending.ready(np.full((len(batch), 4), 0.25, np.float32))

    monkeypatch.setattr(TorchEngine, "submit", failing_submit)
    out_dir = tmp_path / "out"
    with pytest.raises(RuntimeError, match="boom"):
        classify_crops(
            tiny_model,
            real_crops,
            out_dir / "probs.csv",
            backend="torch",
            device="cpu",
            image_size=32,
            batch_size=4,
            num_workers=0,
        )
    # no output and no temporary file; only the resume journal (the first batch's rows) stays
    assert [p.name for p in out_dir.iterdir()] == ["probs.csv.journal"]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ["--device", "gpu"],
            2,
            "Invalid value for '--device': unknown device 'gpu'; use auto, cpu, cuda, cuda:N or N",
        ),
        (
            ["--precision", "fp16", "--device", "cpu"],
            1,
            "Error: --precision fp16 needs a CUDA device; on the CPU use bf16 or fp32\n",
        ),
        (
            ["--backend", "onnxruntime", "--precision", "bf16", "--device", "cpu"],
            1,
            "Error: --backend onnxruntime runs fp32 only; use --backend torch for bf16\n",
        ),
        (["--batch-size", "0"], 2, "Invalid value for '--batch-size': 0 is not in the range x>=1."),
    ],
)
def test_option_errors(tiny_model, real_crops, tmp_path, args, code, message):
    result = invoke("classify", tiny_model, real_crops, tmp_path / "out.csv", *args)
    assert result.exit_code == code
    assert message in result.output
    if code == 1:
        assert result.output == message


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:0", "0"])
def test_cuda_device_without_cuda(tiny_model, real_crops, tmp_path, device):
    result = invoke("classify", tiny_model, real_crops, tmp_path / "out.csv", "--device", device)
    assert result.exit_code == 1
    assert result.output == (
        f"Error: --device {device}: CUDA is not available on this machine; use --device cpu or auto\n"
    )


def test_bf16_on_cpu_runs(b0_checkpoint, real_crops, photos, tmp_path):
    out = tmp_path / "bf16.csv"
    result = invoke(
        "classify", b0_checkpoint, real_crops, out, "--precision", "bf16", "--image-size", B0_SIZE, "--num-workers", 0
    )
    assert result.exit_code == 0, result.output
    assert "torch bf16 on cpu" in result.output
    rows = read_csv(out)
    assert len(rows) == 1 + len(photos.animal_boxes())
    np.testing.assert_allclose(np.array([r[1:] for r in rows[1:]], float).sum(axis=1), 1.0, atol=1e-5)


def test_image_size_is_reported(tiny_model, real_crops, tmp_path):
    result = CliRunner().invoke(
        cli, ["classify", str(tiny_model), str(real_crops), str(tmp_path / "o.csv"), "--num-workers", "0"]
    )
    assert result.exit_code == 0, result.output
    assert (
        "image size 224 px (architecture not recognised; the reference default; set --image-size if the model "
        "was trained at another size)"
    ) in result.output


def test_help_does_not_import_torch():
    code = (
        "import sys\n"
        "from megaclassifier.cli import cli\n"
        "for args in (['--help'], ['classify', '--help'], ['features', '--help'], ['download', '--help']):\n"
        "    try:\n"
        "        cli.main(args, prog_name='megaclassifier')\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = ('torch', 'onnxruntime', 'torchvision', 'efficientnet_pytorch')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[-1] == "[]"
