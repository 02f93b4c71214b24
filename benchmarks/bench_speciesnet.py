"""Benchmark ``run`` with a SpeciesNet release against SpeciesNet's own classifier, and compare their scores.

    .venv/bin/python benchmarks/bench_speciesnet.py [--release FOLDER] [--boxes 60] [--backends torch,onnxruntime]

With ``--release``, a real SpeciesNet release folder (``info.json``, the
classifier, its labels; ``pip install 'megaclassifier[speciesnet]'`` for
onnx2torch). Without it, a stand-in: torchvision's EfficientNetV2-S with
seeded weights behind an NHWC input, traced with ``torch.fx`` and saved whole,
with nine labels. The real test images (or the demo images) are replicated to
about BOXES animal boxes (threshold 0.15).

Prints crops/s end to end and peak memory (RSS) of ``run`` with each backend
and of SpeciesNet's ``SpeciesNetClassifier.preprocess`` + ``batch_predict``
over the same boxes (the ``speciesnet`` package, loaded without its package
``__init__``), and the largest difference between their probabilities
(SpeciesNet's own check: within 1e-4).
"""

from __future__ import annotations

import argparse
import csv
import importlib
import importlib.util
import json
import sys
import tempfile
import types
from pathlib import Path
from typing import Any

import numpy as np
from _workload import build_workload, measure

THRESHOLD = 0.15
STANDIN_LABELS = [
    "00000000-0000-4000-8000-000000000001;mammalia;carnivora;canidae;canis;latrans;coyote",
    "00000000-0000-4000-8000-000000000002;mammalia;carnivora;canidae;;;canine family",
    "00000000-0000-4000-8000-000000000003;mammalia;cetartiodactyla;cervidae;odocoileus;virginianus;white-tailed deer",
    "00000000-0000-4000-8000-000000000004;mammalia;proboscidea;elephantidae;loxodonta;africana;african elephant",
    "00000000-0000-4000-8000-000000000005;mammalia;cetartiodactyla;bovidae;;;bovid family",
    "00000000-0000-4000-8000-000000000006;aves;;;;;bird",
    "f1856211-cfb7-4a5b-9158-c0f72fd09ee6;;;;;;blank",
    "1f689929-883d-4dae-958c-3d57ab5b6c16;;;;;;animal",
    "990ae9dd-7a59-4344-afcb-1b7b21368000;mammalia;primates;hominidae;homo;sapiens;human",
]


def make_standin(folder: Path) -> Path:
    """A stand-in release: EfficientNetV2-S, seeded, NHWC input, saved whole as a torch.fx GraphModule."""
    import torch
    import torchvision

    class Nhwc(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = torchvision.models.efficientnet_v2_s(num_classes=len(STANDIN_LABELS))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x.permute(0, 3, 1, 2))

    folder.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(torch.fx.symbolic_trace(Nhwc().eval()), folder / "classifier.pt")
    (folder / "labels.txt").write_text("\n".join(STANDIN_LABELS) + "\n", encoding="utf-8")
    (folder / "taxonomy.txt").write_text("\n".join(STANDIN_LABELS) + "\n", encoding="utf-8")
    (folder / "geofence.json").write_text("{}", encoding="utf-8")
    info = {"version": "standin", "type": "always_crop", "classifier": "classifier.pt",
            "classifier_labels": "labels.txt", "detector": "md_v5a.0.0.pt", "taxonomy": "taxonomy.txt",
            "geofence": "geofence.json"}  # fmt: skip
    (folder / "info.json").write_text(json.dumps(info), encoding="utf-8")
    return folder


def speciesnet_module(name: str) -> Any:
    """``speciesnet.<name>`` without the package's ``__init__`` (which imports yolov5)."""
    if "speciesnet" not in sys.modules:
        spec = importlib.util.find_spec("speciesnet")
        if spec is None or spec.submodule_search_locations is None:
            sys.exit("the speciesnet package is not installed: pip install --no-deps speciesnet")
        package = types.ModuleType("speciesnet")
        package.__path__ = list(spec.submodule_search_locations)
        package.__spec__ = spec
        sys.modules["speciesnet"] = package
    return importlib.import_module(f"speciesnet.{name}")


def speciesnet_only(release: Path, detections: Path, images: Path, output: Path, per_batch: int = 8) -> None:
    """SpeciesNet's own classifier over the animal boxes; probabilities as JSON {file: [{label: score}]}."""
    classifier = speciesnet_module("classifier")
    utils = speciesnet_module("utils")
    model = classifier.SpeciesNetClassifier(str(release), device="cpu")
    md = json.loads(detections.read_text())
    out: dict[str, list[dict[str, float]]] = {}
    pending: tuple[list[str], list[Any]] = ([], [])
    for image in md["images"]:
        boxes = [d["bbox"] for d in image.get("detections") or [] if d["category"] == "1" and d["conf"] >= THRESHOLD]
        if not boxes:
            continue
        img = utils.load_rgb_image(str(images / image["file"]))
        pending[0].append(image["file"])
        pending[1].append(model.preprocess(img, bboxes=[utils.BBox(*b) for b in boxes]))
        if len(pending[0]) == per_batch:
            _predict(model, pending, out)
            pending = ([], [])
    if pending[0]:
        _predict(model, pending, out)
    output.write_text(json.dumps(out))


def _predict(model: Any, pending: tuple[list[str], list[Any]], out: dict[str, list[dict[str, float]]]) -> None:
    for result in model.batch_predict(pending[0], pending[1], num_classes=None):
        out[result["filepath"]] = [
            dict(zip(c["classes"], c["scores"], strict=True)) for c in result["classifications_list"]
        ]


def max_difference(run_csv: Path, oracle_json: Path, labels: list[str]) -> tuple[int, float]:
    """(crops compared, largest probability difference) between ``run``'s CSV and SpeciesNet's scores."""
    from megaclassifier.formats.naming import parse_crop_filename

    oracle = json.loads(oracle_json.read_text())
    crops: dict[str, list[list[str]]] = {}
    with open(run_csv, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))[1:]
    for row in rows:
        crops.setdefault(parse_crop_filename(row[0]).file, []).append(row)
    worst, compared = 0.0, 0
    for file, rows_of_image in crops.items():
        for row, expected in zip(rows_of_image, oracle[file], strict=True):
            got = np.array(row[1:], dtype=np.float64)
            want = np.array([expected[label] for label in labels])
            worst = max(worst, float(np.abs(got - want).max()))
            compared += 1
    return compared, worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--release", type=Path, help="a real SpeciesNet release folder (default: a stand-in)")
    parser.add_argument("--boxes", type=int, default=60)
    parser.add_argument("--backends", default="torch,onnxruntime")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--speciesnet-only", nargs=4, metavar=("RELEASE", "DETECTIONS", "IMAGES", "OUT"),
                        help=argparse.SUPPRESS)  # fmt: skip
    args = parser.parse_args()
    if args.speciesnet_only:
        speciesnet_only(*map(Path, args.speciesnet_only))
        return
    from megaclassifier.models.speciesnet import read_labels, read_release

    with tempfile.TemporaryDirectory(prefix="bench_speciesnet_") as tmp:
        root = Path(tmp)
        release = args.release or make_standin(root / "release")
        labels = read_labels(read_release(release).classifier_labels)
        probe, _ = build_workload(root / "probe", 50)
        md = json.loads(probe.read_text())
        per_image = sum(
            1
            for im in md["images"]
            for d in im.get("detections") or []
            if d["category"] == "1" and d["conf"] >= THRESHOLD
        ) / max(1, sum(1 for im in md["images"] if im.get("detections")))
        detections, images = build_workload(root / "full", max(1, round(args.boxes / per_image)))
        print(f"release {release.name}, {len(labels)} labels, {detections.name}, batch {args.batch_size}, CPU")
        print(f"{'pipeline':<44}{'crops':>7}{'seconds':>9}{'crops/s':>9}{'peak MiB':>10}{'max |diff|':>12}")
        oracle = root / "speciesnet.json"
        m = measure(
            [sys.executable, __file__, "--speciesnet-only", str(release), str(detections), str(images), str(oracle)]
        )
        crops = sum(len(v) for v in json.loads(oracle.read_text()).values())
        print(f"{'SpeciesNetClassifier (its own code)':<44}{crops:>7}{m.seconds:>9.1f}{crops / m.seconds:>9.2f}"
              f"{m.peak_rss_mib:>10.0f}{'':>12}", flush=True)  # fmt: skip
        for backend in args.backends.split(","):
            out_csv = root / f"{backend}.csv"
            command = [sys.executable, "-m", "megaclassifier", "-q", "run", str(detections), str(release),
                       "--images-dir", str(images), "--threshold", str(THRESHOLD), "--output-json",
                       str(root / f"{backend}.json"), "--output-csv", str(out_csv), "--backend", backend,
                       "--batch-size", str(args.batch_size), "--device", "cpu", "--logdir", tmp]  # fmt: skip
            m = measure(command)
            compared, worst = max_difference(out_csv, oracle, labels)
            print(f"{'run --backend ' + backend:<44}{compared:>7}{m.seconds:>9.1f}{compared / m.seconds:>9.2f}"
                  f"{m.peak_rss_mib:>10.0f}{worst:>12.2g}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
