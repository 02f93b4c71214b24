"""Inputs and a ``run`` command line shared by the shard and Ray tests (``test_shards``, ``test_ray``).

The real camera-trap photos (the ``photos`` fixture), the seeded EfficientNet-B0 at 64 px,
a categories file and a target mapping: the set-up of ``test_run``.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from conftest import PhotoSet

CLASS_NAMES = ["deer", "elk", "cow", "bear", "coyote"]
MAPPING = {"cervid": ["deer", "elk"], "cow": ["cow"], "other": ["bear", "coyote"]}
TIME_LINE = re.compile(r'\n  "classification_completion_time": "[0-9: -]+",?')


@dataclass
class RunInputs:
    detections: Path
    images: Path
    model: Path
    categories: Path
    mapping: Path
    crops: int  # animal boxes with conf >= 0.15


def make_inputs(photos: PhotoSet, b0_checkpoint: Path, folder: Path) -> RunInputs:
    """Copy the model (its ONNX export is cached beside it) and write the categories and mapping."""
    model = Path(shutil.copyfile(b0_checkpoint, folder / "b0.pt"))
    categories = folder / "index_to_name.json"
    categories.write_text(json.dumps({str(i): n for i, n in enumerate(CLASS_NAMES)}), encoding="utf-8")
    mapping = folder / "mapping.json"
    mapping.write_text(json.dumps(MAPPING), encoding="utf-8")
    return RunInputs(photos.detections, photos.images, model, categories, mapping, len(photos.animal_boxes(0.15)))


def run_args(inputs: RunInputs, out: Path, *extra: object) -> list[object]:
    """``run`` on the inputs (square crops, threshold 0.15, 64 px, ONNX Runtime) writing ``out/merged.json``."""
    return [
        "run",
        inputs.detections,
        inputs.model,
        "--output-json",
        out / "merged.json",
        "--images-dir",
        inputs.images,
        "--square-crops",
        "--threshold",
        0.15,
        "--classifier-categories",
        inputs.categories,
        "--target-mapping",
        inputs.mapping,
        "--classifier-name",
        "b0_seeded",
        "--classification-threshold",
        0.05,
        "--image-size",
        64,
        "--batch-size",
        8,
        "--backend",
        "onnxruntime",
        *(["--num-workers", 0] if "--ray" not in extra else []),  # Ray runs its own decoding tasks
        "--logdir",
        out,
        *extra,
    ]


def without_time(path: Path) -> str:
    """A results file's text without its ``info.classification_completion_time`` line (there must be one)."""
    text = path.read_text(encoding="utf-8")
    stripped, found = TIME_LINE.subn("", text)
    assert found == 1, path
    return stripped
