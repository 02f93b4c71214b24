"""``learn-mapping`` and ``train-head`` on synthetic data with known answers, and their bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from test_evaluate import cct, det, results

from megaclassifier.cli import cli
from megaclassifier.evaluate.head import train_head
from megaclassifier.evaluate.holdout import held_out_groups
from megaclassifier.evaluate.mapping import learn_mapping
from megaclassifier.formats.naming import crop_filename

TAXONOMY = (
    "name,kingdom,phylum,class,order,family,genus,species,common\n"
    "red deer,animalia,chordata,mammalia,cetartiodactyla,cervidae,cervus,elaphus,red deer\n"
    "roe deer,animalia,chordata,mammalia,cetartiodactyla,cervidae,capreolus,capreolus,roe deer\n"
)


def _case(tmp_path: Path) -> tuple[Path, Path]:
    # classes of the results: 0 deer, 1 elk, 2 bear (test_evaluate.CLASSES)
    images, labels = {}, {}
    for i in range(6):  # "deer" always means red deer: pure
        images[f"a/d{i}.jpg"], labels[f"a/d{i}.jpg"] = [det("0", 0.9)], "red deer"
    for i in range(6):  # "elk" half red deer, half roe deer: impure, but all cervidae
        images[f"a/e{i}.jpg"], labels[f"a/e{i}.jpg"] = [det("1", 0.9)], "red deer" if i % 2 else "roe deer"
    images["a/b0.jpg"], labels["a/b0.jpg"] = [det("2", 0.9)], "roe deer"  # "bear" seen once: too few
    return results(tmp_path / "r.json", images), cct(tmp_path / "gt.json", labels)


def test_support_purity_and_parent_taxon(tmp_path: Path) -> None:
    res, gt = _case(tmp_path)
    tax = tmp_path / "tax.csv"
    tax.write_text(TAXONOMY)
    learned = learn_mapping(res, gt, tmp_path / "map.json", min_support=5, min_purity=0.6, taxonomy=tax)
    assert json.loads((tmp_path / "map.json").read_text()) == {
        "cervidae": ["elk"],
        "red deer": ["deer"],
        "other": ["bear"],
    }
    assert {r.name: r.reason for r in learned.raw} == {"deer": "label", "elk": "taxon", "bear": "too few"}
    assert learned.unmapped == ["bear"]
    # without the taxonomy the impure class goes to other
    learn_mapping(res, gt, tmp_path / "map2.json", min_support=5)
    assert json.loads((tmp_path / "map2.json").read_text()) == {"red deer": ["deer"], "other": ["bear", "elk"]}


def test_held_out_cameras_score_the_mapping(tmp_path: Path) -> None:
    # deer always on cervids; bear on bears in cam0 and cam1 but on cervids in the held-out cam2
    images = {f"cam{c}/{i}.jpg": [det("0" if i % 3 else "2", 0.9)] for c in range(3) for i in range(6)}
    labels = {f: "cervid" if f.startswith("cam2") or det_class(images[f]) == "0" else "bear" for f in images}
    res, gt = results(tmp_path / "r.json", images), cct(tmp_path / "gt.json", labels)
    learned = learn_mapping(res, gt, tmp_path / "m.json", holdout_by="folder", holdout=["cam2"], min_support=3)
    assert json.loads((tmp_path / "m.json").read_text()) == {"bear": ["bear"], "cervid": ["deer"], "other": ["elk"]}
    assert (learned.learning_images, learned.held_out_images) == (12, 6)
    assert learned.held_out["raw"].accuracy == 0.0
    assert learned.held_out["remapped"].accuracy == pytest.approx(4 / 6)


def det_class(detections: list[dict]) -> str:
    return detections[0]["classifications"][0][0]


def test_holdout_groups_are_chosen_by_name_not_by_order() -> None:
    groups = [f"cam{i:02d}" for i in range(10)]
    chosen = held_out_groups(groups, fraction=0.2)
    assert len(chosen) == 2 and chosen == held_out_groups(reversed(groups), fraction=0.2)
    with pytest.raises(Exception, match="only one group"):
        held_out_groups(["cam1"], fraction=0.2)
    with pytest.raises(Exception, match="--holdout cam9: no labelled image in that group"):
        held_out_groups(["cam1", "cam2"], fraction=0.5, chosen=["cam9"])


def test_learn_mapping_refuses_results_without_classes(tmp_path: Path) -> None:
    md = tmp_path / "md.json"
    md.write_text(
        json.dumps({"images": [{"file": "a.jpg", "detections": []}], "detection_categories": {"1": "animal"}})
    )
    gt = cct(tmp_path / "gt.json", {"a.jpg": "deer"})
    out = CliRunner().invoke(cli, ["learn-mapping", str(md), str(gt), "-o", str(tmp_path / "m.json")])
    assert out.exit_code == 1
    assert out.output.strip() == (
        f"Error: {md}: has no classification_categories; learn-mapping needs a classifier's results"
    )
    assert not (tmp_path / "m.json").exists()


def _features(tmp_path: Path, n: int = 40) -> tuple[Path, Path, np.ndarray]:
    """Crops of two cameras whose 3 features (the tiny model's channel means) separate two classes."""
    rng = np.random.default_rng(0)
    paths, values, labels = [], [], {}
    for i in range(n):
        file = f"cam{i % 2}/img{i:03d}.jpg"
        cls = i % 4 < 2
        labels[file] = "deer" if cls else "bear"
        paths.append(crop_filename(file, 0, "md_v5a.0.0.pt"))
        values.append(rng.normal([1.0, 0.0, 0.0] if cls else [0.0, 1.0, 0.0], 0.2))
    np.savez(tmp_path / "features.npz", paths=np.array(paths), features=np.array(values, dtype=np.float32))
    return tmp_path / "features.npz", cct(tmp_path / "gt.json", labels), np.array(values)


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_train_head_puts_the_fitted_layer_on_the_backbone(tmp_path: Path, tiny_model: Path) -> None:
    import torch

    from megaclassifier.models.resolved import categories_for

    features, gt, _ = _features(tmp_path)
    summary = train_head(features, gt, tmp_path / "head.pt", backbone=tiny_model, holdout_by="folder", holdout=["cam1"])
    assert summary.classes == ["bear", "deer"] and (summary.train_crops, summary.held_out_crops) == (20, 20)
    assert summary.held_out is not None and summary.held_out.accuracy == 1.0
    assert categories_for(tmp_path / "head.pt", None) == ["bear", "deer"]
    model = torch.jit.load(str(tmp_path / "head.pt"))
    x = torch.zeros(2, 3, 8, 8)
    x[0, 0] = 1.0  # channel means (1, 0, 0): deer
    x[1, 1] = 1.0  # (0, 1, 0): bear
    assert model(x).argmax(dim=1).tolist() == [1, 0]


def test_train_head_bad_input(tmp_path: Path, tiny_model: Path, b0_torchscript: Path) -> None:
    features, gt, _ = _features(tmp_path)
    runner = CliRunner()
    out = runner.invoke(
        cli, ["train-head", str(features), str(gt), "-o", str(tmp_path / "h.pt"), "--backbone", str(b0_torchscript)]
    )
    assert out.exit_code == 1
    assert out.output.strip().endswith(
        "its last layer takes 1280 features, FEATURES have 3; is this the model the features came from?"
    )
    assert not (tmp_path / "h.pt").exists()
    one = cct(tmp_path / "one.json", {f"cam{i % 2}/img{i:03d}.jpg": "deer" for i in range(40)})
    out = runner.invoke(
        cli, ["train-head", str(features), str(one), "-o", str(tmp_path / "h.pt"), "--backbone", str(tiny_model)]
    )
    assert out.exit_code == 1
    assert out.output.strip() == f"Error: {one}: the learning set has 1 class; a head needs two or more"
