"""``evaluate``: every rule on synthetic results with known answers, bad input, and two oracles.

The oracles: MegaDetector's own ``analyze_classification_results`` (one prediction and
one label per image) and scikit-learn's ``classification_report`` give the same
per-class precision and recall as ``evaluate`` on the same COCO Camera Traps labels.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from megaclassifier.cli import cli
from megaclassifier.evaluate.evaluate import evaluate
from megaclassifier.evaluate.labels import read_labels
from megaclassifier.evaluate.rules import Rules

CLASSES = {"0": "deer", "1": "elk", "2": "bear"}
DESCRIPTIONS = {
    "0": "g0;mammalia;cetartiodactyla;cervidae;odocoileus;virginianus;white-tailed deer",
    "1": "g1;mammalia;cetartiodactyla;cervidae;cervus;canadensis;elk",
    "2": "g2;mammalia;carnivora;ursidae;ursus;americanus;american black bear",
}


def det(cls: str | None, score: float = 0.9, conf: float = 0.9, category: str = "1") -> dict[str, Any]:
    out: dict[str, Any] = {"category": category, "conf": conf, "bbox": [0.1, 0.1, 0.2, 0.2]}
    if cls is not None:
        out["classifications"] = [[cls, score]]
    return out


def results(path: Path, images: dict[str, list[dict[str, Any]]]) -> Path:
    data = {
        "info": {"format_version": "1.4", "detector": "md_v5a.0.0.pt", "classifier": "test"},
        "detection_categories": {"1": "animal", "2": "person", "3": "vehicle"},
        "classification_categories": CLASSES,
        "classification_category_descriptions": DESCRIPTIONS,
        "images": [{"file": f, "detections": d} for f, d in images.items()],
    }
    path.write_text(json.dumps(data))
    return path


def cct(path: Path, labels: dict[str, str], seqs: dict[str, str] | None = None) -> Path:
    names = sorted(set(labels.values()))
    images = [{"id": i, "file_name": f, **({"seq_id": seqs[f]} if seqs else {})} for i, f in enumerate(labels)]
    annotations = [{"id": i, "image_id": i, "category_id": names.index(labels[f])} for i, f in enumerate(labels)]
    data = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i, "name": n} for i, n in enumerate(names)],
    }
    path.write_text(json.dumps(data))
    return path


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# file -> (detections, label, what the rules predict)
RULE_CASES: dict[str, tuple[list[dict[str, Any]], str, str]] = {
    "c/no_detection.jpg": ([], "empty", "empty"),
    "c/below_detection_threshold.jpg": ([det("0", conf=0.1)], "blank", "empty"),
    "c/person.jpg": ([det(None, category="2"), det("0", 0.9, conf=0.5)], "person", "human"),
    "c/vehicle.jpg": ([det(None, category="3")], "vehicle", "vehicle"),
    "c/unsure.jpg": ([det("0", 0.59)], "deer", "below-threshold"),
    "c/no_classes.jpg": ([det(None)], "deer", "below-threshold"),
    "c/most_detections.jpg": ([det("0", 0.7), det("0", 0.7), det("1", 0.99)], "deer", "deer"),
    "c/tie_higher_score.jpg": ([det("0", 0.7), det("1", 0.9)], "elk", "elk"),
    "c/tie_alphabetical.jpg": ([det("1", 0.8), det("2", 0.8)], "bear", "bear"),
    "c/wrong.jpg": ([det("2", 0.95)], "deer", "bear"),
}


def test_each_rule_gives_its_known_answer(tmp_path: Path) -> None:
    res = results(tmp_path / "r.json", {f: d for f, (d, _, _) in RULE_CASES.items()})
    labels = cct(tmp_path / "gt.json", {f: label for f, (_, label, _) in RULE_CASES.items()})
    summary = evaluate(res, labels, tmp_path / "out")
    got = {r["file"]: (r["label"], r["results"]) for r in rows(tmp_path / "out" / "predictions.csv")}
    assert got == {f: (Rules().label(label), want) for f, (_, label, want) in RULE_CASES.items()}
    assert summary.entities == 10
    per_class = {r["class"]: r for r in rows(tmp_path / "out" / "per_class.csv")}
    # deer: 4 labelled, 1 right (most_detections); predicted deer once
    assert per_class["deer"] == {"class": "deer", "precision": "1.0000", "recall": "0.2500", "f1": "0.4000",
                                 "support": "4", "predicted": "1"}  # fmt: skip
    assert per_class["below-threshold"]["support"] == "0" and per_class["below-threshold"]["predicted"] == "2"
    matrix = rows(tmp_path / "out" / "confusion_matrix.csv")
    assert list(matrix[0]) == [
        "label \\ predicted",
        "bear",
        "below-threshold",
        "deer",
        "elk",
        "empty",
        "human",
        "vehicle",
    ]
    assert (tmp_path / "out" / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rules_are_configurable(tmp_path: Path) -> None:
    res = results(tmp_path / "r.json", {"a.jpg": [det("0", 0.5)], "b.jpg": [det("0", 0.9, conf=0.3)]})
    labels = cct(tmp_path / "gt.json", {"a.jpg": "deer", "b.jpg": "deer"})
    evaluate(res, labels, tmp_path / "o1", rules=Rules(classification_threshold=0.4))
    assert [r["results"] for r in rows(tmp_path / "o1" / "predictions.csv")] == ["deer", "deer"]
    evaluate(res, labels, tmp_path / "o2", rules=Rules(threshold=0.5, unsure_label="animal"))
    assert [r["results"] for r in rows(tmp_path / "o2" / "predictions.csv")] == ["animal", "empty"]


def test_sequences_collapse_empty_and_unsure_frames(tmp_path: Path) -> None:
    images = {
        "s/1.jpg": [], "s/2.jpg": [det("1", 0.9)], "s/3.jpg": [det("1", 0.3)],  # seq A: elk
        "t/1.jpg": [det("0", 0.9)], "t/2.jpg": [det("2", 0.9)], "t/3.jpg": [det("2", 0.8)],  # seq B: bear (2 vs 1)
        "u/1.jpg": [], "u/2.jpg": [det("0", 0.2)],  # seq C: only empty and unsure: unsure wins
    }  # fmt: skip
    labels = {"s/1.jpg": "empty", "s/2.jpg": "elk", "s/3.jpg": "elk", "t/1.jpg": "bear", "t/2.jpg": "bear",
              "t/3.jpg": "bear", "u/1.jpg": "empty", "u/2.jpg": "empty"}  # fmt: skip
    seqs = {f: f.split("/")[0] for f in images}
    summary = evaluate(results(tmp_path / "r.json", images), cct(tmp_path / "gt.json", labels, seqs), tmp_path / "o")
    assert summary.sequences == 3
    seq = summary.variants[0].levels["sequence"]
    assert seq.classes == ["bear", "below-threshold", "elk", "empty"]
    assert seq.matrix.tolist() == [[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0]]
    assert (tmp_path / "o" / "per_class_sequence.csv").is_file()
    assert (tmp_path / "o" / "confusion_matrix_sequence.png").is_file()


def test_rank_family_counts_deer_for_elk_as_right(tmp_path: Path) -> None:
    res = results(tmp_path / "r.json", {"a.jpg": [det("0")], "b.jpg": [det("2")]})
    taxonomy = tmp_path / "tax.csv"
    taxonomy.write_text(
        "name,kingdom,phylum,class,order,family,genus,species,common\n"
        "elk,animalia,chordata,mammalia,cetartiodactyla,cervidae,cervus,canadensis,elk\n"
    )
    labels = cct(tmp_path / "gt.json", {"a.jpg": "elk", "b.jpg": "elk"})
    summary = evaluate(res, labels, tmp_path / "o", rank="family", taxonomy=taxonomy)
    got = [(r["label"], r["results"]) for r in rows(tmp_path / "o" / "predictions.csv")]
    assert got == [("cervidae", "cervidae"), ("cervidae", "ursidae")]
    assert summary.variants[0].levels["image"].accuracy == 0.5


def test_remapped_and_compared_results_side_by_side(tmp_path: Path) -> None:
    split = det("0", 0.35)
    split["classifications"].append(["1", 0.3])  # deer 0.35 + elk 0.3: cervid 0.65, as aggregate sums them
    res = results(tmp_path / "r.json", {"a.jpg": [split], "b.jpg": [det("1", 0.7)], "c.jpg": [det("2")]})
    other = results(tmp_path / "head.json", {"a.jpg": [det("0")], "b.jpg": [det("0")], "c.jpg": [det("2")]})
    mapping = tmp_path / "map.json"
    mapping.write_text(json.dumps({"cervid": ["deer", "elk"], "bear": ["bear"]}))
    labels = cct(tmp_path / "gt.json", {"a.jpg": "cervid", "b.jpg": "cervid", "c.jpg": "bear"})
    evaluate(res, labels, tmp_path / "o", target_mapping=mapping, compare=[("head", other)])
    comparison = {r["variant"]: r["accuracy"] for r in rows(tmp_path / "o" / "comparison.csv")}
    assert comparison == {"results": "0.3333", "remapped": "1.0000", "head": "0.3333"}
    assert (tmp_path / "o" / "remapped" / "per_class.csv").is_file()
    assert (tmp_path / "o" / "head" / "confusion_matrix.csv").is_file()


def test_bad_input_is_counted_or_one_line(tmp_path: Path) -> None:
    res = results(tmp_path / "r.json", {"a.jpg": [det("0")], "b.jpg": [det("1")]})
    labels = tmp_path / "timelapse.csv"
    labels.write_text(
        "File,RelativePath,DateTime,DeleteFlag,Species\n"
        "a.jpg,,2024-01-01 10:00:00,false,deer\n"
        "a.jpg,,2024-01-01 10:00:00,false,deer\n"  # duplicate row
        "b.jpg,,2024-01-01 10:00:00,false,moose\n"  # a class the classifier does not have
        "gone.jpg,,2024-01-01 10:00:00,false,deer\n"  # not in the results
        "d.jpg,,2024-01-01 10:00:00,true,deer\n"  # deleted
        "e.jpg,,2024-01-01 10:00:00,false,\n"  # no label
    )
    summary = evaluate(res, labels, tmp_path / "o")
    assert dict(summary.warnings) == {
        "duplicate rows": 1,
        "deleted rows": 1,
        "rows without a label": 1,
        "labels for images not in the results": 1,
        "label classes the classifier does not have": 1,
    }
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["warnings"]["duplicate rows"] == 1
    nothing = tmp_path / "none.csv"
    nothing.write_text("File,Species\nx.jpg,deer\n")
    out = CliRunner().invoke(cli, ["evaluate", str(res), str(nothing), "-o", str(tmp_path / "o2")])
    assert out.exit_code == 1
    assert out.output.strip().splitlines()[-1] == (
        f"Error: {nothing}: none of its 1 labelled images is in {res} (e.g. 'x.jpg'); "
        "paths must match the results' file values (try --ignore-case)"
    )
    no_column = tmp_path / "cols.csv"
    no_column.write_text("File,Animal\na.jpg,deer\n")
    out = CliRunner().invoke(cli, ["evaluate", str(res), str(no_column), "-o", str(tmp_path / "o3")])
    assert out.exit_code == 1
    assert out.output.strip() == (
        f"Error: {no_column}: no 'Species' column; name the label column with --label-column (columns: File, Animal)"
    )
    assert not (tmp_path / "o3").exists()


def test_ignore_case_and_backslashes_match(tmp_path: Path) -> None:
    res = results(tmp_path / "r.json", {"Cam1\\IMG_1.JPG": [det("0")]})
    labels = tmp_path / "t.csv"
    labels.write_text("File,RelativePath,Species\nimg_1.jpg,cam1,Deer\n")
    with pytest.raises(Exception, match="none of its 1 labelled images"):
        evaluate(res, labels, tmp_path / "o")
    summary = evaluate(res, labels, tmp_path / "o", ignore_case=True)
    assert summary.variants[0].levels["image"].accuracy == 1.0


def test_the_four_label_sources(tmp_path: Path) -> None:
    # folder per class: crops label one detection, photos their path below the root
    root = tmp_path / "folders"
    (root / "deer" / "cam1").mkdir(parents=True)
    (root / "deer" / "cam1" / "a.jpg___crop01_md_v5a.0.0.pt.jpg").write_bytes(b"")
    (root / "elk").mkdir()
    (root / "elk" / "b.jpg").write_bytes(b"")
    folders = read_labels(root)
    assert folders.crops == {("cam1/a.jpg", 1): "deer"} and folders.images == {"elk/b.jpg": "elk"}
    # Camtrap DP: media-level and event-level observations
    dp = tmp_path / "dp"
    dp.mkdir()
    (dp / "media.csv").write_text(
        "mediaID,deploymentID,timestamp,filePath\nm1,dep1,2024-01-01T10:00:00Z,cam1/a.jpg\n"
        "m2,dep1,2024-01-01T10:00:05Z,cam1/b.jpg\nm3,dep2,2024-01-01T10:00:00Z,cam2/c.jpg\n"
    )
    (dp / "observations.csv").write_text(
        "observationID,deploymentID,mediaID,eventID,eventStart,eventEnd,observationLevel,observationType,scientificName\n"
        "o1,dep1,,e1,2024-01-01T10:00:00Z,2024-01-01T10:00:10Z,event,animal,Cervus canadensis\n"
        "o2,dep2,m3,,2024-01-01T10:00:00Z,2024-01-01T10:00:00Z,media,blank,\n"
    )
    camtrap = read_labels(dp)
    assert camtrap.images == {
        "cam1/a.jpg": "cervus canadensis",
        "cam1/b.jpg": "cervus canadensis",
        "cam2/c.jpg": "empty",
    }
    assert camtrap.sequences == {"cam1/a.jpg": "e1", "cam1/b.jpg": "e1"}
    assert camtrap.locations["cam2/c.jpg"] == "dep2"
    # Timelapse: RelativePath with backslashes, a chosen label column
    tl = tmp_path / "tl.csv"
    tl.write_text("File,RelativePath,DeleteFlag,Animal\nx.jpg,site\\cam1,False,Deer\n")
    assert read_labels(tl, label_column="Animal").images == {"site/cam1/x.jpg": "deer"}
    # CCT: two labels on one image keep the first alphabetically, counted
    two = tmp_path / "two.json"
    two.write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.jpg"}],
        "annotations": [{"image_id": 1, "category_id": 2}, {"image_id": 1, "category_id": 1}],
        "categories": [{"id": 1, "name": "elk"}, {"id": 2, "name": "deer"}],
    }))  # fmt: skip
    labels = read_labels(two)
    assert labels.images == {"a.jpg": "deer"} and labels.warnings["images with two labels"] == 1


def _random_case(tmp_path: Path, n: int = 120) -> tuple[Path, Path]:
    rng = random.Random(7)
    names = ["deer", "elk", "bear", "empty", "human"]
    images, labels = {}, {}
    for i in range(n):
        file = f"cam{i % 4}/img{i:04d}.jpg"
        truth = rng.choice(names)
        dets = []
        for _ in range(rng.choice([0, 1, 1, 2, 3])):
            if rng.random() < 0.1:
                dets.append(det(None, category="2", conf=round(rng.uniform(0.05, 1), 3)))
                continue
            cls = rng.choice(["0", "1", "2"]) if rng.random() < 0.5 else str(names.index(truth) % 3)
            dets.append(det(cls, round(rng.uniform(0.3, 1), 3), conf=round(rng.uniform(0.05, 1), 3)))
        images[file], labels[file] = dets, truth
    return results(tmp_path / "r.json", images), cct(tmp_path / "gt.json", labels)


def test_megadetector_and_scikit_learn_agree(tmp_path: Path) -> None:
    from megadetector.postprocessing.analyze_classification_results import (
        ClassificationAnalysisOptions,
        analyze_classification_results,
    )
    from sklearn.metrics import classification_report

    res, gt = _random_case(tmp_path)
    summary = evaluate(res, gt, tmp_path / "o", rules=Rules(threshold=0.15, classification_threshold=0.6))
    ours = {r["class"]: r for r in rows(tmp_path / "o" / "per_class.csv")}

    options = ClassificationAnalysisOptions()
    options.results_file, options.gt_file = str(res), str(gt)
    options.detection_threshold = 0.15
    options.classification_confidence_threshold = 0.6
    options.single_prediction_per_image = options.single_label_per_image = True
    md = analyze_classification_results(options).per_category_results
    assert set(md) == set(ours)
    for name, r in md.items():
        assert float(ours[name]["precision"]) == pytest.approx(r["precision"], abs=5e-5), name
        assert float(ours[name]["recall"]) == pytest.approx(r["recall"], abs=5e-5), name
        assert int(ours[name]["support"]) == r["tp"] + r["fn"], name

    predictions = rows(tmp_path / "o" / "predictions.csv")
    report = classification_report(
        [p["label"] for p in predictions], [p["results"] for p in predictions], output_dict=True, zero_division=0
    )
    for name, r in ours.items():
        assert float(r["precision"]) == pytest.approx(report[name]["precision"], abs=5e-5)
        assert float(r["recall"]) == pytest.approx(report[name]["recall"], abs=5e-5)
        assert float(r["f1"]) == pytest.approx(report[name]["f1-score"], abs=5e-5)
    assert summary.variants[0].levels["image"].accuracy == pytest.approx(report["accuracy"])


def test_heatmap_with_fifty_classes_is_big_enough_to_read(tmp_path: Path) -> None:
    from PIL import Image

    from megaclassifier.evaluate.metrics import score, write_heatmap

    names = [f"species number {i:02d}" for i in range(50)]
    truth = [n for n in names for _ in range(3)]
    predicted = [names[(i // 3 + (i % 3 == 2)) % 50] for i in range(150)]
    write_heatmap(tmp_path / "h.png", score(truth, predicted), title="50 classes")
    with Image.open(tmp_path / "h.png") as image:
        width, height = image.size
    # 0.32 inch (48 px at 150 dpi) per class, plus room for the names
    assert height >= 50 * 48 and width >= height
