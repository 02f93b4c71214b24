"""End to end: the reference's four documented commands, in order, on the real camera-trap images.

The canonical invocation of the reference spec (section 0), run through the CLI
on ``../shared/testdata/cameratrap/`` (the bundled demo copies on a fresh clone:
the ``photos`` fixture) with a seeded EfficientNet-B0 checkpoint::

    megaclassifier crop detections.json crops/ --images-dir images/ --square-crops --threshold 0.15 \\
        --threads 2 --logdir logs/
    megaclassifier classify b0.pt crops/ crops_output.csv.gz --detections-json detections.json \\
        --classifier-categories index_to_name.json --image-size 300 --batch-size 16 --num-workers 0
    megaclassifier aggregate crops_output.csv.gz --target-mapping mapping.json \\
        --output-csv crops_output_remapped.csv.gz --output-label-index label_index_remapped.json
    megaclassifier merge crops_output_remapped.csv.gz label_index_remapped.json --output-json final.json \\
        --classifier-name ... --detection-json detections.json --threshold 0.05 --typical-confidence-threshold 0.75

The model is the seeded ``b0_checkpoint`` with its classifier head divided by
the spread of its logits on some of the crops: at 300 px, four or five times
the size its batch norms were calibrated at, the seeded B0's probabilities are
all but 0 or 1, which would leave the threshold, rounding and sorting of the
merge step untested.

The final JSON is checked field by field (sections 6, 7 and 13 of the spec):
against the input file, against classification lists recomputed here from the
remapped CSV with the csv module and numpy, and with MegaDetector's validator.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import PhotoSet
from helpers import read_csv
from megadetector.postprocessing.validate_batch_results import ValidateBatchResultsOptions, validate_batch_results

from megaclassifier.cli import cli

pytestmark = pytest.mark.slow

CLASS_NAMES = ["deer", "elk", "cow", "bear", "coyote"]  # the seeded B0 has 5 outputs (models.B0_CLASSES)
MAPPING = {"cervid": ["deer", "elk"], "cow": ["cow"], "other": ["bear", "coyote"]}
TARGETS = ["cervid", "cow", "other"]  # sorted(MAPPING)
CLASSIFIER_NAME = "efficientnet-b0_seeded"
DETECTION_THRESHOLD = 0.15
MERGE_THRESHOLD = 0.05
TYPICAL_THRESHOLD = 0.75
CROP_NAME = re.compile(r"^(?P<file>.+)___crop(?P<index>\d{2})_(?P<detector>.+)\.jpg$")
IMAGE_SIZE = 300
TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


@dataclass
class Chain:
    """The files of one run of the chain, and what each command printed."""

    detections: Path
    crops: Path
    raw_csv: Path
    remapped_csv: Path
    label_index: Path
    final: Path
    logdir: Path
    outputs: dict[str, str]
    expected_crops: int  # animal (category "1") detections with conf >= 0.15

    @property
    def source(self) -> dict:
        return json.loads(self.detections.read_text(encoding="utf-8"))

    @property
    def merged(self) -> dict:
        return json.loads(self.final.read_text(encoding="utf-8"))


def invoke(args: list[str]) -> str:
    result = CliRunner().invoke(cli, ["-q", *map(str, args)])
    assert result.exit_code == 0, (args[0], result.output, result.exception)
    return result.output


def crop_key(path: str) -> tuple[str, int]:
    match = CROP_NAME.match(path)
    assert match, path
    assert match["detector"] == "md_v5a.0.0.pt"
    return match["file"], int(match["index"])


def expected_classifications(values: list[float], threshold: float) -> list[list]:
    """The merge rule, written out: keep p >= threshold (unrounded), round half-even, stable sort descending."""
    kept = [(str(i), float(np.round(np.float64(p), 4))) for i, p in enumerate(values) if p >= threshold]
    return [list(pair) for pair in sorted(kept, key=lambda pair: -pair[1])]


def tempered(checkpoint: Path, crops: list[Path], out: Path) -> Path:
    """``checkpoint`` with its head divided by the spread of its logits on ``crops`` at 300 px.

    The logits are computed here with efficientnet_pytorch, independently of megaclassifier.
    """
    import torch
    from efficientnet_pytorch import EfficientNet

    from megaclassifier.preprocess import load_crop

    state = torch.load(checkpoint, map_location="cpu", weights_only=False)["model"]
    model = EfficientNet.from_name("efficientnet-b0", num_classes=len(CLASS_NAMES))
    model.load_state_dict(state)
    with torch.no_grad():
        logits = model.eval()(torch.from_numpy(np.stack([load_crop(p, IMAGE_SIZE) for p in crops])))
    temperature = float(logits.std())
    state["_fc.weight"] = state["_fc.weight"] / temperature
    state["_fc.bias"] = state["_fc.bias"] / temperature
    torch.save({"model": state}, out)
    return out


@pytest.fixture(scope="module")
def chain(photos: PhotoSet, b0_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Chain:
    out = tmp_path_factory.mktemp("chain_e2e")
    detections = photos.detections
    categories = out / "index_to_name.json"
    categories.write_text(json.dumps({str(i): n for i, n in enumerate(CLASS_NAMES)}), encoding="utf-8")
    mapping = out / "mapping.json"
    mapping.write_text(json.dumps(MAPPING), encoding="utf-8")
    c = Chain(
        detections=detections,
        crops=out / "crops",
        raw_csv=out / "crops_output.csv.gz",
        remapped_csv=out / "crops_output_remapped.csv.gz",
        label_index=out / "crops_output_label_index_remapped.json",
        final=out / "final" / "detections_classified.json",
        logdir=out / "logs",
        outputs={},
        expected_crops=len(photos.animal_boxes(DETECTION_THRESHOLD)),
    )
    c.outputs["crop"] = invoke(
        [
            "crop",
            detections,
            c.crops,
            "--images-dir",
            photos.images,
            "--square-crops",
            "--threshold",
            DETECTION_THRESHOLD,
            "--threads",
            2,
            "--logdir",
            c.logdir,
        ]
    )
    model = tempered(b0_checkpoint, sorted(c.crops.rglob("*.jpg"))[::4], out / "b0_tempered.pt")
    c.outputs["classify"] = invoke(
        [
            "classify",
            model,
            c.crops,
            c.raw_csv,
            "--detections-json",
            detections,
            "--classifier-categories",
            categories,
            "--image-size",
            IMAGE_SIZE,
            "--batch-size",
            16,
            "--num-workers",
            0,
        ]
    )
    c.outputs["aggregate"] = invoke(
        [
            "aggregate",
            c.raw_csv,
            "--target-mapping",
            mapping,
            "--output-csv",
            c.remapped_csv,
            "--output-label-index",
            c.label_index,
        ]
    )
    c.outputs["merge"] = invoke(
        [
            "merge",
            c.remapped_csv,
            c.label_index,
            "--output-json",
            c.final,
            "--classifier-name",
            CLASSIFIER_NAME,
            "--detection-json",
            detections,
            "--threshold",
            MERGE_THRESHOLD,
            "--typical-confidence-threshold",
            TYPICAL_THRESHOLD,
        ]
    )
    return c


def animal_keys(md: dict, threshold: float) -> list[tuple[str, int]]:
    """(file, detection index) of the animal detections at or above threshold, in JSON order."""
    return [
        (image["file"], i)
        for image in md["images"]
        for i, det in enumerate(image.get("detections") or [])
        if det["category"] == "1" and det["conf"] >= threshold
    ]


def test_crop_step(chain: Chain) -> None:
    crops = sorted(p.relative_to(chain.crops).as_posix() for p in chain.crops.rglob("*") if p.is_file())
    assert len(crops) == chain.expected_crops
    assert sorted(crop_key(p) for p in crops) == sorted(animal_keys(chain.source, DETECTION_THRESHOLD))
    logs = list(chain.logdir.glob("crop_detections_log_*.json"))
    assert len(logs) == 1
    log = json.loads(logs[0].read_text(encoding="utf-8"))
    assert log["images_failed_download_or_crop"] == [] and log["num_new_crops"] == chain.expected_crops


def test_classify_csv(chain: Chain) -> None:
    header, rows = read_csv(chain.raw_csv)
    assert header == ["path", *CLASS_NAMES]
    # rows follow the JSON order x detection index, existing crops only
    assert [crop_key(row[0]) for row in rows] == animal_keys(chain.source, DETECTION_THRESHOLD)
    for row in rows:
        values = np.array(row[1:], dtype=np.float64)
        assert np.all((values >= 0) & (values <= 1))
        assert values.sum() == pytest.approx(1.0, abs=1e-5), row  # float32 softmax
        # float32 values in their shortest form: the text is the float32's repr
        assert all(str(np.float32(v)) == v for v in row[1:]), row
    # a seeded model whose output depends on the input: not all crops get the same answer
    assert len({tuple(row[1:]) for row in rows}) > chain.expected_crops // 2


def test_aggregate_outputs(chain: Chain) -> None:
    header, rows = read_csv(chain.remapped_csv)
    assert header == ["path", *TARGETS]
    raw_header, raw_rows = read_csv(chain.raw_csv)
    assert [row[0] for row in rows] == [row[0] for row in raw_rows]  # same row order
    for row, raw in zip(rows, raw_rows, strict=True):
        values = [float(v) for v in row[1:]]
        assert sum(values) == pytest.approx(1.0, abs=1e-6), row
        source = dict(zip(raw_header[1:], (float(v) for v in raw[1:]), strict=True))
        # each target is the float64 sum of its classes' probabilities (two terms at most: exact)
        assert values == [sum(source[name] for name in MAPPING[target]) for target in TARGETS], row
    label_index = chain.label_index.read_text(encoding="utf-8")
    assert json.loads(label_index) == {"0": "cervid", "1": "cow", "2": "other"}
    assert label_index.rstrip("\n") == json.dumps({"0": "cervid", "1": "cow", "2": "other"}, indent=1)


def test_top_level_and_info(chain: Chain) -> None:
    source, merged = chain.source, chain.merged
    # input key order kept (this file has images first), classification_categories added at the end
    assert list(merged) == [*source, "classification_categories"]
    assert merged["classification_categories"] == {"0": "cervid", "1": "cow", "2": "other"}
    assert merged["detection_categories"] == source["detection_categories"]

    info, source_info = merged["info"], source["info"]
    assert list(info)[: len(source_info)] == list(source_info)
    assert {k: info[k] for k in source_info} == source_info  # detector, times, metadata kept
    assert info["format_version"] == "1.4"  # not bumped
    assert list(info)[len(source_info) :] == ["classifier", "classification_completion_time", "classifier_metadata"]
    assert info["classifier"] == CLASSIFIER_NAME
    assert info["classifier_metadata"] == {"typical_classification_threshold": TYPICAL_THRESHOLD}
    assert TIME.match(info["classification_completion_time"]), info["classification_completion_time"]
    datetime.strptime(info["classification_completion_time"], "%Y-%m-%d %H:%M:%S")


def test_output_text_is_indent_1_ascii(chain: Chain) -> None:
    text = chain.final.read_text(encoding="utf-8")
    assert text.isascii()
    assert text.rstrip("\n") == json.dumps(json.loads(text), indent=1, ensure_ascii=True)


def test_exactly_the_cropped_detections_are_classified(chain: Chain) -> None:
    source, merged = chain.source, chain.merged
    expected = set(animal_keys(source, DETECTION_THRESHOLD))
    assert len(expected) == chain.expected_crops
    assert [image["file"] for image in merged["images"]] == [image["file"] for image in source["images"]]
    classified = set()
    for image, original in zip(merged["images"], source["images"], strict=True):
        # image-level fields other than detections are untouched
        assert {k: v for k, v in image.items() if k != "detections"} == {
            k: v for k, v in original.items() if k != "detections"
        }
        if original.get("detections") is None:
            assert json.dumps(image) == json.dumps(original)
            continue
        assert len(image["detections"]) == len(original["detections"])
        for i, (det, original_det) in enumerate(zip(image["detections"], original["detections"], strict=True)):
            if "classifications" in det:
                classified.add((image["file"], i))
                assert list(det)[-1] == "classifications"
                det = {k: v for k, v in det.items() if k != "classifications"}
            # conf, bbox and category re-serialised unchanged (the integer 0 in a bbox stays 0)
            assert json.dumps(det) == json.dumps(original_det), (image["file"], i)
    assert classified == expected


def test_classification_lists_match_the_remapped_csv(chain: Chain) -> None:
    header, rows = read_csv(chain.remapped_csv)
    assert len(rows) == chain.expected_crops
    expected = {
        crop_key(row[0]): expected_classifications([float(v) for v in row[1:]], MERGE_THRESHOLD) for row in rows
    }
    merged = {image["file"]: image for image in chain.merged["images"]}
    ids = set(chain.merged["classification_categories"])
    assert ids == {"0", "1", "2"}
    for (file, index), wanted in expected.items():
        got = merged[file]["detections"][index]["classifications"]
        assert got == wanted, (file, index)
        assert got, (file, index)  # three targets summing to 1: at least one is >= 0.05
        assert all(isinstance(c, list) and len(c) == 2 for c in got)
        assert all(c[0] in ids and isinstance(c[1], float) for c in got)
        assert all(c[1] >= MERGE_THRESHOLD for c in got)
        assert all(round(c[1], 4) == c[1] for c in got)
        confidences = [c[1] for c in got]
        assert confidences == sorted(confidences, reverse=True)
    # the lists exercise the threshold: some keep one target, some several, some targets are dropped
    lengths = {len(wanted) for wanted in expected.values()}
    assert 1 in lengths and len(lengths) > 1, lengths
    assert any(len(wanted) < len(TARGETS) for wanted in expected.values())


def test_validator_accepts_the_output(chain: Chain) -> None:
    options = ValidateBatchResultsOptions()
    options.raise_errors = False
    results = validate_batch_results(str(chain.final), options)["validation_results"]
    assert results["errors"] == []
    assert results["warnings"] == []
    counts = results["classification_category_id_to_count"]
    assert set(counts) <= {"0", "1", "2"} and sum(counts.values()) >= chain.expected_crops


def test_summary_lines(chain: Chain) -> None:
    # -q keeps progress and info logging off; each command still ends with its one-line summary
    # (crop also warns that the truncated JPEG was decoded as far as its data goes)
    last = {command: output.splitlines()[-1] for command, output in chain.outputs.items()}
    assert last["crop"].startswith(f"{chain.expected_crops} crops written, 0 existed, 0 images failed")
    assert last["classify"].startswith(f"{chain.expected_crops} of {chain.expected_crops} crops classified")
    assert f"{IMAGE_SIZE} px" in last["classify"]
    assert last["aggregate"].startswith(f"Wrote {chain.expected_crops} rows x {len(TARGETS)} targets")
    assert f"{chain.expected_crops} detections classified from {chain.expected_crops} rows" in last["merge"]
