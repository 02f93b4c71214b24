"""A stand-in SpeciesNet release in the published layout, with a seeded ``torch.fx`` classifier.

:func:`build_release` writes ``info.json``, the classifier (a GraphModule saved whole with
``torch.save``, NHWC float32 input), its labels, a taxonomy and a geofence, as PyPI
``speciesnet`` 5.x reads them.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

BLANK = "f1856211-cfb7-4a5b-9158-c0f72fd09ee6;;;;;;blank"
ANIMAL = "1f689929-883d-4dae-958c-3d57ab5b6c16;;;;;;animal"
HUMAN = "990ae9dd-7a59-4344-afcb-1b7b21368000;mammalia;primates;hominidae;homo;sapiens;human"
VEHICLE = "e2895ed5-780b-48f6-8a11-9e27cb594511;;;;;;vehicle"
UNKNOWN = (
    "f2efdae9-efb8-48fb-8a91-eccf79ab4ffb;no cv result;no cv result;no cv result;no cv result;no cv result;no cv result"
)

#: The classifier's labels, one per output.
LABELS = [
    "0b1f0a3e-0001-4000-8000-000000000001;mammalia;carnivora;canidae;canis;latrans;coyote",
    "0b1f0a3e-0002-4000-8000-000000000002;mammalia;carnivora;canidae;canis;lupus;gray wolf",
    "0b1f0a3e-0003-4000-8000-000000000003;mammalia;carnivora;canidae;;;canine family",
    "0b1f0a3e-0004-4000-8000-000000000004;mammalia;cetartiodactyla;cervidae;odocoileus;virginianus;white-tailed deer",
    "0b1f0a3e-0005-4000-8000-000000000005;mammalia;cetartiodactyla;cervidae;cervus;canadensis;elk",
    "0b1f0a3e-0006-4000-8000-000000000006;aves;;;;;bird",
    BLANK,
    ANIMAL,
    HUMAN,
]

#: Taxa the ensemble may roll up to that are no output of the classifier.
EXTRA_TAXA = [
    "0b1f0a3e-0101-4000-8000-000000000101;mammalia;carnivora;canidae;canis;;canis species",
    "0b1f0a3e-0102-4000-8000-000000000102;mammalia;carnivora;;;;carnivorous mammal",
    "0b1f0a3e-0103-4000-8000-000000000103;mammalia;cetartiodactyla;cervidae;;;deer family",
    "0b1f0a3e-0104-4000-8000-000000000104;mammalia;cetartiodactyla;;;;even-toed ungulate",
    "0b1f0a3e-0105-4000-8000-000000000105;mammalia;;;;;mammal",
    "0b1f0a3e-0106-4000-8000-000000000106;mammalia;cetartiodactyla;cervidae;odocoileus;;odocoileus species",
    "0b1f0a3e-0107-4000-8000-000000000107;mammalia;cetartiodactyla;cervidae;cervus;;cervus species",
    "0b1f0a3e-0108-4000-8000-000000000108;mammalia;primates;hominidae;homo;;homo species",
    "0b1f0a3e-0109-4000-8000-000000000109;mammalia;primates;hominidae;;;hominid family",
    "0b1f0a3e-0110-4000-8000-000000000110;mammalia;primates;;;;primate",
]

#: Lines of the published taxonomy file that are no taxa (the ensemble leaves them out of its map).
NON_TAXA = [VEHICLE, UNKNOWN]

#: Coyote only in North America; gray wolf only in Canada and in two US states; white-tailed deer not in Great Britain;
#: elk not in the USA state of Florida; the deer family allowed only in the USA.
GEOFENCE = {
    "mammalia;carnivora;canidae;canis;latrans": {"allow": {"USA": [], "CAN": [], "MEX": []}},
    "mammalia;carnivora;canidae;canis;lupus": {"allow": {"CAN": [], "USA": ["AK", "MT"]}},
    "mammalia;cetartiodactyla;cervidae;odocoileus;virginianus": {"block": {"GBR": []}},
    "mammalia;cetartiodactyla;cervidae;cervus;canadensis": {"block": {"USA": ["FL"]}},
    "mammalia;cetartiodactyla;cervidae;;": {"allow": {"USA": []}},
}

#: info.json's file names.
FILES = {
    "classifier": "always_crop_test.pt",
    "classifier_labels": "always_crop_test.labels.txt",
    "taxonomy": "taxonomy_release.txt",
    "geofence": "geofence_release.json",
}


class _Net(torch.nn.Module):
    """NHWC [0, 1] in, logits out: a strided convolution, mean pooling and a linear head."""

    def __init__(self, num_classes: int, scale: float) -> None:
        super().__init__()
        self.scale = scale
        self.conv = torch.nn.Conv2d(3, 8, kernel_size=4, stride=8)
        self.head = torch.nn.Linear(8, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.conv(x.permute(0, 3, 1, 2) * 4.0 - 2.0))
        return self.head(y.mean(dim=(2, 3)) * self.scale)


def build_release(
    folder: Path,
    *,
    release_type: str = "always_crop",
    seed: int = 7,
    files: dict[str, str] | None = None,
    scale: float = 3.0,
) -> Path:
    """Write a release into ``folder`` (created) and return it; ``files`` replaces :data:`FILES` names.

    ``scale`` multiplies the features before the head: larger, the more confident the classifier.
    """
    names = {**FILES, **(files or {})}
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    module = torch.fx.symbolic_trace(_Net(len(LABELS), scale).eval())
    torch.save(module, folder / names["classifier"])
    (folder / names["classifier_labels"]).write_text("\n".join(LABELS) + "\n", encoding="utf-8")
    (folder / names["taxonomy"]).write_text("\n".join(LABELS + EXTRA_TAXA + NON_TAXA) + "\n", encoding="utf-8")
    (folder / names["geofence"]).write_text(json.dumps(GEOFENCE), encoding="utf-8")
    info = {"version": "4.0.1a-test", "type": release_type, "detector": "md_v5a.0.0.pt"}
    (folder / "info.json").write_text(json.dumps({**info, **names}), encoding="utf-8")
    return folder
