"""Test models and crops, exposed as pytest fixtures (``pytest_plugins = ["models"]`` in conftest.py).

* ``tiny_model``: a TorchScript model with fixed weights: the mean of each
  input channel, then a 3 -> 4 linear layer (``TINY_WEIGHT``, ``TINY_BIAS``).
  Its probabilities are computed independently by :func:`tiny_expected`.
* ``b0_checkpoint`` / ``b0_torchscript``: an EfficientNet-B0 with 5 classes
  and seeded weights (batch-norm statistics calibrated on seeded smooth noise
  so the output depends on the input), saved as a ``{"model": state_dict}``
  checkpoint and as a TorchScript model traced from it.
* ``real_crops``: square crops (threshold 0.15) of ../shared/testdata/cameratrap,
  made by ``megaclassifier crop``: 38 crops.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

if TYPE_CHECKING:
    from conftest import PhotoSet

TINY_NAMES = ["deer", "elk", "cow", "bear"]
TINY_WEIGHT = [[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0], [-1.0, -1.0, -1.0]]
TINY_BIAS = [0.0, 0.1, -0.1, 0.5]
B0_CLASSES = 5
B0_SIZE = 64
DETECTOR = "md_v5a.0.0.pt"


def tiny_expected(batch: np.ndarray) -> np.ndarray:
    """The tiny model's softmax probabilities, in float64, of a (N, 3, S, S) batch."""
    means = batch.astype(np.float64).mean(axis=(2, 3))
    logits = means @ np.array(TINY_WEIGHT).T + np.array(TINY_BIAS)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def build_tiny_model(path: Path) -> Path:
    """Save the tiny TorchScript model at ``path``."""
    import torch

    class TinyNet(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(3, len(TINY_NAMES))
            with torch.no_grad():
                self.fc.weight.copy_(torch.tensor(TINY_WEIGHT))
                self.fc.bias.copy_(torch.tensor(TINY_BIAS))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x.mean(dim=(2, 3)))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # "torch.jit.script is deprecated"
        torch.jit.script(TinyNet().eval()).save(str(path))
    return path


def build_b0(seed: int = 0):  # noqa: ANN201 - an EfficientNet
    """A seeded EfficientNet-B0 with 5 classes, batch norms calibrated on seeded noise, in eval mode."""
    import torch
    from efficientnet_pytorch import EfficientNet

    torch.manual_seed(seed)
    model = EfficientNet.from_name("efficientnet-b0", num_classes=B0_CLASSES)
    model.set_swish(memory_efficient=False)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None  # cumulative average
            module.reset_running_stats()
    model.train()
    with torch.no_grad():
        # smooth noise, like photographs; white noise would leave activations in the hundreds on real crops
        coarse = torch.randn(16, 3, 8, 8)
        smooth = torch.nn.functional.interpolate(coarse, size=(B0_SIZE, B0_SIZE), mode="bilinear", align_corners=False)
        model(smooth / smooth.std())
    return model.eval()


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def tiny_model(model_dir: Path) -> Path:
    """The tiny TorchScript model file."""
    return build_tiny_model(model_dir / "tiny_compiled.pt")


@pytest.fixture(scope="session")
def tiny_categories(model_dir: Path) -> Path:
    """Index-to-name JSON of the tiny model."""
    path = model_dir / "tiny_index_to_name.json"
    path.write_text(json.dumps({str(i): name for i, name in enumerate(TINY_NAMES)}))
    return path


@pytest.fixture(scope="session")
def b0_checkpoint(model_dir: Path) -> Path:
    """EfficientNet-B0 checkpoint ``{"model": state_dict, "epoch": 3, "val/acc": numpy float}``."""
    import torch

    path = model_dir / "b0.pt"
    torch.save({"model": build_b0().state_dict(), "epoch": 3, "val/acc": np.float64(0.5)}, path)
    return path


@pytest.fixture(scope="session")
def b0_torchscript(model_dir: Path) -> Path:
    """The same EfficientNet-B0, traced at 64 px and saved as TorchScript."""
    import torch

    path = model_dir / "b0_compiled.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(build_b0(), torch.zeros(1, 3, B0_SIZE, B0_SIZE))
    traced.save(str(path))
    return path


@pytest.fixture(scope="session")
def real_crops(photos: PhotoSet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of the square crops (threshold 0.15) of the ``photos`` set: 38 of the real test images."""
    from megaclassifier.crop import crop_detections

    out = tmp_path_factory.mktemp("classify_crops")
    crop_detections(
        photos.detections,
        out / "crops",
        images_dir=photos.images,
        square_crops=True,
        threshold=0.15,
        threads=2,
        logdir=out,
    )
    return out / "crops"


@pytest.fixture
def crops_copy(real_crops: Path, tmp_path: Path) -> Path:
    """A private copy of ``real_crops`` that a test may change."""
    return Path(shutil.copytree(real_crops, tmp_path / "crops"))
