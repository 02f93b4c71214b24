"""The demo behind ``make demo``: the whole pipeline on the bundled demo images.

Runs the reference's four documented steps (crop, classify, aggregate, merge)
with ``megaclassifier``, prints detections per class and where the
Timelapse-ready JSON is, then does the same with ``megaclassifier run`` in one
pass and checks that both outputs agree. It ends with the HTML report of the
results (``megaclassifier report``) and prints where its index.html is.
Without ``--model`` it builds a small seeded EfficientNet-B0 stand-in: its labels
are meaningless, it only shows the flow.

    python demo/run_demo.py [--model M --categories C [--mapping MAP]] [--output-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from collections import Counter
from pathlib import Path

DEMO = Path(os.path.relpath(Path(__file__).resolve().parent / "data"))
STANDIN_CLASSES = ["white-tailed deer", "mule deer", "elk", "cattle", "coyote", "gray wolf", "black bear", "bobcat"]
STANDIN_MAPPING = {
    "bear": ["black bear"],
    "canid": ["coyote", "gray wolf"],
    "cow": ["cattle"],
    "deer": ["mule deer", "white-tailed deer"],
    "elk": ["elk"],
    "other": ["bobcat"],
}


def build_standin(folder: Path) -> tuple[Path, Path, Path]:
    """A seeded EfficientNet-B0 checkpoint in MegaClassifier's format, its index JSON and a target mapping."""
    import torch
    from efficientnet_pytorch import EfficientNet

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = EfficientNet.from_name("efficientnet-b0", num_classes=len(STANDIN_CLASSES))
    model.set_swish(memory_efficient=False)
    for module in model.modules():  # batch norms calibrated on seeded noise, so outputs vary with the input
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None
            module.reset_running_stats()
    model.train()
    with torch.no_grad():
        model(torch.randn(8, 3, 96, 96))
        model._fc.weight.mul_(4.0)
    checkpoint = folder / "standin_efficientnet-b0.pt"
    torch.save({"model": model.eval().state_dict()}, checkpoint)
    categories = folder / "standin_index_to_name.json"
    categories.write_text(json.dumps({str(i): n for i, n in enumerate(STANDIN_CLASSES)}, indent=1))
    mapping = folder / "standin_target_mapping.json"
    mapping.write_text(json.dumps(STANDIN_MAPPING, indent=1))
    return checkpoint, categories, mapping


def step(*args: str) -> None:
    command = [sys.executable, "-m", "megaclassifier", *args]
    print(f"\n$ megaclassifier {shlex.join(args)}", flush=True)
    subprocess.run(command, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a real classifier (TorchScript, checkpoint or downloaded name)")
    parser.add_argument("--categories", help="its index-to-name JSON")
    parser.add_argument("--mapping", help="optional target mapping JSON for the aggregate step")
    parser.add_argument("--output-dir", default="demo-output")
    args = parser.parse_args()
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)

    if args.model:
        model, categories = args.model, args.categories
        mapping = Path(args.mapping) if args.mapping else None
        print(f"Demo with the model {model}.")
    else:
        model, categories, mapping = build_standin(out / "standin-model")
        print(
            "No MODEL given: using a small seeded EfficientNet-B0 stand-in. Its labels are MEANINGLESS;\n"
            "it only shows the pipeline. For real labels: make demo MODEL=megaclassifier-v0.1 (after\n"
            "`megaclassifier download megaclassifier-v0.1`) or MODEL=... CATEGORIES=..."
        )

    detections = DEMO / "detections.json"
    crops = out / "crops"
    probs = out / "crops_output.csv.gz"
    step(
        "crop",
        str(detections),
        str(crops),
        "--images-dir",
        str(DEMO / "images"),
        "--threshold",
        "0.15",
        "--square-crops",
        "--threads",
        "2",
        "--logdir",
        str(out),
    )
    classify = [
        "classify",
        str(model),
        str(crops),
        str(probs),
        "--detections-json",
        str(detections),
        "--batch-size",
        "16",
    ]
    if categories:
        classify += ["--classifier-categories", str(categories)]
    step(*classify)
    merge_csv = probs
    label_index = Path(categories) if categories else None
    if mapping is not None:
        merge_csv = out / "crops_output_remapped.csv.gz"
        label_index = out / "label_index_remapped.json"
        step(
            "aggregate",
            str(probs),
            "--target-mapping",
            str(mapping),
            "--output-csv",
            str(merge_csv),
            "--output-label-index",
            str(label_index),
        )
    if label_index is None:
        sys.exit("merge needs the classes' names: give CATEGORIES=... with MODEL=...")
    final = out / "detections_classified.json"
    step(
        "merge",
        str(merge_csv),
        str(label_index),
        "--output-json",
        str(final),
        "--classifier-name",
        Path(str(model)).stem,
        "--detection-json",
        str(detections),
        "--threshold",
        "0.05",
        "--typical-confidence-threshold",
        "0.75",
    )
    report(final)

    print("\nThe same four steps in one pass, without crop files:")
    one_pass = out / "detections_classified_run.json"
    run = [
        "run",
        str(detections),
        str(model),
        "--images-dir",
        str(DEMO / "images"),
        "--threshold",
        "0.15",
        "--square-crops",
        "--output-json",
        str(one_pass),
        "--classifier-name",
        Path(str(model)).stem,
        "--classification-threshold",
        "0.05",
        "--typical-confidence-threshold",
        "0.75",
        "--logdir",
        str(out),
        "--exact",  # the chain's answers bit for bit (the default fast path decodes at a draft reduction)
    ]
    if categories:
        run += ["--classifier-categories", str(categories)]
    if mapping is not None:
        run += ["--target-mapping", str(mapping)]
    step(*run)
    same = _without_time(final) == _without_time(one_pass)
    print(f"run's output is {'identical to' if same else 'DIFFERENT from'} the chain's (completion time aside).")

    step("report", str(final), str(out / "report"), "--images-dir", str(DEMO / "images"))
    print(f"\nHTML report: {(out / 'report' / 'index.html').resolve()}")


def _without_time(path: Path) -> dict:
    data = json.loads(path.read_text())
    data["info"].pop("classification_completion_time", None)
    return data


def report(final: Path) -> None:
    data = json.loads(final.read_text())
    names = data["classification_categories"]
    per_class: Counter[str] = Counter()
    detections = 0
    for image in data["images"]:
        for det in image.get("detections") or []:
            detections += 1
            if det.get("classifications"):
                per_class[names[det["classifications"][0][0]]] += 1
    print(f"\n{detections} detections in {len(data['images'])} images; {sum(per_class.values())} classified.")
    print(f"{'top class':<20}{'detections':>10}")
    for name, count in per_class.most_common():
        print(f"{name:<20}{count:>10}")
    print(f"\nTimelapse-ready results: {final.resolve()}")


if __name__ == "__main__":
    main()
