"""``features``: pooled EfficientNet features to .npz or .csv."""

from __future__ import annotations

import re

import numpy as np
import pytest
from helpers import invoke
from models import B0_CLASSES, B0_SIZE

from megaclassifier.classify import extract_features
from megaclassifier.preprocess import load_crop

torch = pytest.importorskip("torch")


def readme_features(checkpoint, batch: np.ndarray) -> np.ndarray:
    """The reference README's recipe, run directly on efficientnet-pytorch."""
    from efficientnet_pytorch import EfficientNet

    model = EfficientNet.from_name("efficientnet-b0", num_classes=B0_CLASSES).eval()
    model.load_state_dict(torch.load(checkpoint, weights_only=False)["model"])
    with torch.inference_mode():
        conv = model.extract_features(torch.from_numpy(batch))
        return model._avg_pooling(conv).flatten(start_dim=1).numpy()


def test_npz_and_csv_from_a_checkpoint(b0_checkpoint, real_crops, photos, tmp_path):
    npz, csv = tmp_path / "features.npz", tmp_path / "features.csv"
    md = photos.detections
    crops = len(photos.animal_boxes())
    for out in (npz, csv):
        result = invoke(
            "features",
            b0_checkpoint,
            real_crops,
            out,
            "-d",
            md,
            "--image-size",
            B0_SIZE,
            "--num-workers",
            0,
            "--batch-size",
            16,
        )
        assert result.exit_code == 0, result.output
        assert result.output == f"1280 features of {crops} of {crops} crops written to {out} [64 px on cpu]\n"
    data = np.load(npz)
    assert sorted(data.files) == ["features", "paths"]
    paths, features = data["paths"], data["features"]
    assert features.dtype == np.float32 and features.shape == (crops, 1280)
    assert paths[0] == f"african_elephants.jpg___crop00_{'md_v5a.0.0.pt'}.jpg"
    expected = readme_features(b0_checkpoint, np.stack([load_crop(real_crops / p, B0_SIZE) for p in paths]))
    assert np.abs(features - expected).max() <= 1e-4 * np.abs(expected).max()

    lines = csv.read_text().splitlines()
    assert lines[0] == "path," + ",".join(str(i) for i in range(1280))
    rows = [line.split(",") for line in lines[1:]]
    assert [r[0] for r in rows] == list(paths)
    assert all(str(np.float32(v)) == v for v in rows[0][1:])
    np.testing.assert_array_equal(np.array([r[1:] for r in rows], dtype=np.float32), features)


def test_torchscript_features_are_the_input_of_its_last_layer(tiny_model, real_crops, photos, tmp_path):
    out = tmp_path / "f.npz"
    summary = extract_features(tiny_model, real_crops, out, image_size=64, num_workers=0, device="cpu")
    assert (summary.extracted, summary.feature_size) == (len(photos.animal_boxes()), 3)
    data = np.load(out)
    batch = np.stack([load_crop(real_crops / p, 64) for p in data["paths"]])
    np.testing.assert_allclose(data["features"], batch.astype(np.float64).mean(axis=(2, 3)), rtol=0, atol=1e-5)
    assert list(data["paths"]) == sorted(p.name for p in real_crops.iterdir())


def test_unreadable_crop_has_no_row(b0_checkpoint, crops_copy, photos, tmp_path):
    crops = len(photos.animal_boxes())
    victim = sorted(crops_copy.iterdir())[1]
    victim.write_bytes(b"garbage")
    out = tmp_path / "f.npz"
    result = invoke("features", b0_checkpoint, crops_copy, out, "--image-size", 32, "--num-workers", 0)
    assert result.exit_code == 0, result.output
    assert re.search(rf"{re.escape(victim.name)}: cannot read this crop \(cannot identify image file", result.output)
    assert result.output.splitlines()[-1] == (
        f"1280 features of {crops - 1} of {crops} crops (1 unreadable, no row) written to {out} [32 px on cpu]"
    )
    assert victim.name not in set(np.load(out)["paths"])


def test_torchscript_without_linear_head(tmp_path, real_crops):
    import warnings

    class NoHead(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1)

    model = tmp_path / "nohead_compiled.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.script(NoHead()).save(str(model))
    out = tmp_path / "f.npz"
    result = invoke("features", model, real_crops, out, "--image-size", 32)
    assert result.exit_code == 1
    assert result.output == (
        f"Error: {model}: no final linear layer found in this TorchScript model; "
        "features need the checkpoint (as megaclassifier_v0.1_efficientnet-b3.pt)\n"
    )
    assert not out.exists()


def test_output_suffix_is_checked(b0_checkpoint, real_crops, tmp_path):
    result = invoke("features", b0_checkpoint, real_crops, tmp_path / "f.parquet")
    assert result.exit_code == 2
    assert f"Invalid value for 'OUTPUT': '{tmp_path / 'f.parquet'}' must end in .npz, .csv or .csv.gz" in result.output
