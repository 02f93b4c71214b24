"""``megaclassifier run``: one pass, the same answers as crop -> classify -> aggregate -> merge.

On the real camera-trap images of ``../shared/testdata/cameratrap`` (the bundled
demo copies on a fresh clone: the ``photos`` fixture) at 64 px:

* (a) ``run --exact`` and the four-command chain give the same merged JSON (except
  ``info.classification_completion_time``) and the same probability CSV rows,
  exactly (the crops pass through the same JPEG quality-75 round trip in memory);
* (b) ``--exact --no-jpeg-roundtrip`` changes the probabilities a little, never the top-1 class
  (on the tiny model: see the note above that test);
* (c) ONNX Runtime and torch agree to 1e-4;
* (d) a missing and a corrupt image are recorded failures, not a stop;
* (e) ``--save-crops`` writes the files ``crop`` writes, byte for byte;
* (f) bad categories or mapping files stop the run before any output;
* (g) ``run --help`` does not import torch.

The model (except in (b)) is the seeded ``b0_checkpoint``, at the 64 px its
batch norms were calibrated at; a first test checks that its probabilities on
these crops are spread out, so that the comparisons below mean something.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from conftest import PhotoSet
from helpers import read_csv
from models import TINY_NAMES

from megaclassifier.cli import cli

CLASS_NAMES = ["deer", "elk", "cow", "bear", "coyote"]  # the seeded B0 has 5 outputs (models.B0_CLASSES)
MAPPING = {"cervid": ["deer", "elk"], "cow": ["cow"], "other": ["bear", "coyote"]}
CLASSIFIER_NAME = "efficientnet-b0_seeded"
IMAGE_SIZE = 64
CROP_OPTIONS = ["--square-crops", "--threshold", "0.15"]
MERGE_OPTIONS = ["--typical-confidence-threshold", "0.75"]
CLASSIFY_OPTIONS = ["--image-size", str(IMAGE_SIZE), "--batch-size", "16"]


@dataclass
class Inputs:
    detections: Path
    images: Path
    model: Path
    categories: Path
    mapping: Path
    crops: int  # animal detections with conf >= 0.15: what crop, classify and run see


@dataclass
class Outputs:
    """What one run of the chain or of ``run`` wrote, and its last stderr line."""

    json: Path
    csv: Path
    logdir: Path
    summary: str
    crops: Path | None = None

    @property
    def merged(self) -> dict:
        return json.loads(self.json.read_text(encoding="utf-8"))

    @property
    def rows(self) -> dict[str, list[str]]:
        header, rows = read_csv(self.csv)
        assert header == ["path", *CLASS_NAMES]
        table = {row[0]: row[1:] for row in rows}
        assert len(table) == len(rows), "duplicate paths"
        return table


def invoke(args: list, *, exit_code: int = 0) -> Result:
    result = CliRunner().invoke(cli, ["-q", *map(str, args)])
    assert result.exit_code == exit_code, (args[0], result.output, result.exception)
    return result


def last_line(result: Result) -> str:
    return result.output.splitlines()[-1]


def probabilities(outputs: Outputs) -> tuple[list[str], np.ndarray]:
    rows = outputs.rows
    keys = sorted(rows)
    return keys, np.array([[float(v) for v in rows[k]] for k in keys])


@pytest.fixture(scope="module")
def inputs(photos: PhotoSet, b0_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Inputs:
    folder = tmp_path_factory.mktemp("run_inputs")
    model = Path(shutil.copyfile(b0_checkpoint, folder / "b0.pt"))  # the ONNX export is cached beside it
    categories = folder / "index_to_name.json"
    categories.write_text(json.dumps({str(i): n for i, n in enumerate(CLASS_NAMES)}), encoding="utf-8")
    mapping = folder / "mapping.json"
    mapping.write_text(json.dumps(MAPPING), encoding="utf-8")
    return Inputs(photos.detections, photos.images, model, categories, mapping, len(photos.animal_boxes(0.15)))


@pytest.fixture(scope="module")
def chain(inputs: Inputs, tmp_path_factory: pytest.TempPathFactory) -> Outputs:
    """crop -> classify (torch) -> aggregate -> merge, as documented."""
    out = tmp_path_factory.mktemp("run_chain")
    crops, raw, remapped, index = out / "crops", out / "probs.csv.gz", out / "remapped.csv.gz", out / "remapped.json"
    invoke(
        [
            "crop",
            inputs.detections,
            crops,
            "--images-dir",
            inputs.images,
            *CROP_OPTIONS,
            "--threads",
            2,
            "--logdir",
            out,
        ]
    )
    invoke(
        [
            "classify",
            inputs.model,
            crops,
            raw,
            "--detections-json",
            inputs.detections,
            "--classifier-categories",
            inputs.categories,
            *CLASSIFY_OPTIONS,
            "--num-workers",
            0,
            "--backend",
            "torch",
        ]
    )
    invoke(
        ["aggregate", raw, "--target-mapping", inputs.mapping, "--output-csv", remapped, "--output-label-index", index]
    )
    result = invoke(
        [
            "merge",
            remapped,
            index,
            "--output-json",
            out / "merged.json",
            "--classifier-name",
            CLASSIFIER_NAME,
            "--detection-json",
            inputs.detections,
            "--threshold",
            0.05,
            *MERGE_OPTIONS,
        ]
    )
    return Outputs(out / "merged.json", raw, out, last_line(result), crops)


def run_once(inputs: Inputs, out: Path, *options: object) -> Outputs:
    result = invoke(
        [
            "run",
            inputs.detections,
            inputs.model,
            "--output-json",
            out / "merged.json",
            "--images-dir",
            inputs.images,
            *CROP_OPTIONS,
            "--classifier-categories",
            inputs.categories,
            "--target-mapping",
            inputs.mapping,
            "--output-csv",
            out / "probs.csv.gz",
            "--classifier-name",
            CLASSIFIER_NAME,
            "--classification-threshold",
            0.05,
            *MERGE_OPTIONS,
            *CLASSIFY_OPTIONS,
            "--logdir",
            out / "logs",
            *options,
        ]
    )
    save = out / "crops" if "--save-crops" in options else None
    return Outputs(out / "merged.json", out / "probs.csv.gz", out / "logs", last_line(result), save)


@pytest.fixture(scope="module")
def run_w0(inputs: Inputs, tmp_path_factory: pytest.TempPathFactory) -> Outputs:
    return run_once(inputs, tmp_path_factory.mktemp("run_w0"), "--exact", "--backend", "torch", "--num-workers", 0)


@pytest.fixture(scope="module")
def run_w2(inputs: Inputs, tmp_path_factory: pytest.TempPathFactory) -> Outputs:
    out = tmp_path_factory.mktemp("run_w2")
    return run_once(inputs, out, "--exact", "--backend", "torch", "--num-workers", 2, "--save-crops", out / "crops")


@pytest.fixture(scope="module")
def run_onnx(inputs: Inputs, tmp_path_factory: pytest.TempPathFactory) -> Outputs:
    return run_once(
        inputs, tmp_path_factory.mktemp("run_onnx"), "--exact", "--backend", "onnxruntime", "--num-workers", 0
    )


# (a) the same answers as the chain


def test_chain_probabilities_are_lively(inputs: Inputs, chain: Outputs) -> None:
    _, values = probabilities(chain)
    assert values.shape == (inputs.crops, len(CLASS_NAMES))
    assert np.median(values.max(axis=1)) < 0.99 and len(set(values.argmax(axis=1).tolist())) > 1


@pytest.mark.parametrize("run_fixture", ["run_w0", "run_w2"])
def test_run_equals_chain(request: pytest.FixtureRequest, inputs: Inputs, chain: Outputs, run_fixture: str) -> None:
    run: Outputs = request.getfixturevalue(run_fixture)
    assert run.summary.startswith(f"{inputs.crops} crops classified (")
    boxes = len({file for file, _ in PhotoSet("", inputs.detections.parent).animal_boxes(0.15)})
    blank = len(json.loads(inputs.detections.read_text(encoding="utf-8"))["images"]) - boxes
    assert (
        f"), {inputs.crops} detections merged, {boxes} images with boxes ({blank} without, not opened), "
        f"0 images failed: wrote {run.json}; see "
    ) in run.summary

    # merged JSON: identical, key order included, except the completion time
    merged, expected = run.merged, chain.merged
    for data in (merged, expected):
        assert data["info"].pop("classification_completion_time")
    assert json.dumps(merged, indent=1) == json.dumps(expected, indent=1)

    # probability CSV: the same rows (run writes them in sorted-file order, classify in JSON order)
    # with the same float32 text, so exactly equal values: tolerance 0
    assert read_csv(run.csv)[0] == read_csv(chain.csv)[0]
    assert run.rows == chain.rows
    assert len(run.rows) == inputs.crops


def test_run_log(run_w0: Outputs) -> None:
    logs = list(run_w0.logdir.glob("run_log_*.json"))
    assert len(logs) == 1 and str(logs[0]) in run_w0.summary
    log = json.loads(logs[0].read_text(encoding="utf-8"))
    assert log["images_failed_download_or_crop"] == [] and log["failure_reasons"] == {}
    assert log["num_new_crops"] == 0  # no --save-crops


# (b) without the JPEG round trip
#
# Compared on the tiny model (a linear layer on the channel means; models.py), whose output moves
# smoothly with the pixels. The seeded B0 is no use here: a random network amplifies the JPEG
# noise (about 4 grey levels per pixel): 6 of its 38 top-1 classes flip, probabilities move by 0.61.


@pytest.fixture(scope="module")
def tiny_chain_csv(chain: Outputs, inputs: Inputs, tiny_model: Path, tiny_categories: Path) -> Path:
    """The tiny model's probabilities on the chain's crop files."""
    assert chain.crops is not None
    out = chain.logdir / "tiny_probs.csv.gz"
    invoke(
        [
            "classify",
            tiny_model,
            chain.crops,
            out,
            "--detections-json",
            inputs.detections,
            "--classifier-categories",
            tiny_categories,
            *CLASSIFY_OPTIONS,
            "--num-workers",
            0,
            "--backend",
            "torch",
        ]
    )
    return out


def tiny_run(inputs: Inputs, tiny_model: Path, tiny_categories: Path, out: Path, *options: object) -> Path:
    invoke(
        [
            "run",
            inputs.detections,
            tiny_model,
            "--output-json",
            out / "merged.json",
            "--images-dir",
            inputs.images,
            *CROP_OPTIONS,
            "--classifier-categories",
            tiny_categories,
            "--output-csv",
            out / "probs.csv.gz",
            *CLASSIFY_OPTIONS,
            "--backend",
            "torch",
            "--num-workers",
            0,
            "--logdir",
            out,
            *options,
        ]
    )
    return out / "probs.csv.gz"


def tiny_table(path: Path) -> tuple[list[str], np.ndarray]:
    header, rows = read_csv(path)
    assert header == ["path", *TINY_NAMES]
    table = {row[0]: [float(v) for v in row[1:]] for row in rows}
    keys = sorted(table)
    return keys, np.array([table[k] for k in keys])


def test_no_jpeg_roundtrip_is_close(
    inputs: Inputs, tiny_model: Path, tiny_categories: Path, tiny_chain_csv: Path, tmp_path: Path
) -> None:
    keys, expected = tiny_table(tiny_chain_csv)
    assert len(keys) == inputs.crops and len(set(expected.argmax(axis=1).tolist())) > 1
    # with the round trip the tiny model too gives exactly the chain's numbers
    (tmp_path / "jpeg").mkdir()
    keys_jpeg, values_jpeg = tiny_table(tiny_run(inputs, tiny_model, tiny_categories, tmp_path / "jpeg", "--exact"))
    assert keys_jpeg == keys and np.array_equal(values_jpeg, expected)
    (tmp_path / "raw").mkdir()
    keys_raw, values = tiny_table(
        tiny_run(inputs, tiny_model, tiny_categories, tmp_path / "raw", "--exact", "--no-jpeg-roundtrip")
    )
    assert keys_raw == keys
    assert (values.argmax(axis=1) == expected.argmax(axis=1)).all()
    difference = np.abs(values - expected).max()
    assert 0 < difference < 0.02  # measured: 0.00685 (tiny model, 64 px, torch on the CPU)


# (c) ONNX Runtime


def test_onnxruntime_matches_torch(run_w0: Outputs, run_onnx: Outputs) -> None:
    assert "onnxruntime" in run_onnx.summary and "torch" in run_w0.summary
    keys, torch_values = probabilities(run_w0)
    keys_onnx, onnx_values = probabilities(run_onnx)
    assert keys_onnx == keys
    assert np.abs(onnx_values - torch_values).max() <= 1e-4  # measured: 1.8e-5 (seeded B0, 64 px, CPU)


# (d) failed images


def test_missing_and_corrupt_images_are_recorded(inputs: Inputs, tmp_path: Path) -> None:
    source = json.loads(inputs.detections.read_text(encoding="utf-8"))
    good = ["ocelot.jpg", "american_black_bear.jpg", "domestic_cattle.jpg"]
    images = tmp_path / "images"
    images.mkdir()
    for name in good:
        shutil.copyfile(inputs.images / name, images / name)
    (images / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG" * 10)
    by_file = {image["file"]: image for image in source["images"]}
    box = {"category": "1", "conf": 0.9, "bbox": [0.1, 0.1, 0.5, 0.5]}
    test_images = [
        by_file["ocelot.jpg"],
        {"file": "missing.jpg", "detections": [box]},
        by_file["american_black_bear.jpg"],
        {"file": "corrupt.jpg", "detections": [dict(box)]},
        by_file["domestic_cattle.jpg"],
    ]
    detections = tmp_path / "md.json"
    detections.write_text(json.dumps({**source, "images": test_images}), encoding="utf-8")
    out = tmp_path / "out" / "merged.json"

    result = invoke(
        [
            "run",
            detections,
            inputs.model,
            "--output-json",
            out,
            "--images-dir",
            images,
            *CROP_OPTIONS,
            "--classifier-categories",
            inputs.categories,
            "--target-mapping",
            inputs.mapping,
            "--image-size",
            IMAGE_SIZE,
            "--backend",
            "torch",
            "--num-workers",
            0,
            "--logdir",
            tmp_path / "logs",
        ]
    )
    assert result.exit_code == 0
    assert "5 crops classified (" in last_line(result)
    assert ", 5 detections merged, 5 images with boxes (0 without, not opened), 2 images failed: " in last_line(result)

    (log_path,) = (tmp_path / "logs").glob("run_log_*.json")
    log = json.loads(log_path.read_text(encoding="utf-8"))
    assert log["images_failed_download_or_crop"] == ["corrupt.jpg", "missing.jpg"]
    assert sorted(log["failure_reasons"]) == ["corrupt.jpg", "missing.jpg"]
    assert "not found" in log["failure_reasons"]["missing.jpg"]
    assert "cannot decode" in log["failure_reasons"]["corrupt.jpg"]

    merged = {image["file"]: image for image in json.loads(out.read_text(encoding="utf-8"))["images"]}
    for name in ("missing.jpg", "corrupt.jpg"):
        assert merged[name]["detections"] == [box]  # untouched: no classifications
    classified = [det for name in good for det in merged[name]["detections"] if "classifications" in det]
    assert len(classified) == 5 and all(det["classifications"] for det in classified)


# (e) --save-crops


def test_save_crops_writes_what_crop_writes(inputs: Inputs, chain: Outputs, run_w2: Outputs) -> None:
    assert run_w2.crops is not None and chain.crops is not None

    def files(root: Path) -> dict[str, bytes]:
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    saved, cropped = files(run_w2.crops), files(chain.crops)
    assert sorted(saved) == sorted(cropped)
    assert len(saved) == inputs.crops
    assert saved == cropped
    (log_path,) = run_w2.logdir.glob("run_log_*.json")
    assert json.loads(log_path.read_text(encoding="utf-8"))["num_new_crops"] == inputs.crops


# (f) bad input stops the run before any output


def test_wrong_width_categories(inputs: Inputs, tmp_path: Path) -> None:
    categories = tmp_path / "four.json"
    categories.write_text(json.dumps({str(i): n for i, n in enumerate(CLASS_NAMES[:4])}), encoding="utf-8")
    out = tmp_path / "merged.json"
    result = CliRunner().invoke(
        cli,
        [
            "-q",
            "run",
            str(inputs.detections),
            str(inputs.model),
            "--output-json",
            str(out),
            "--images-dir",
            str(inputs.images),
            "--classifier-categories",
            str(categories),
            "--image-size",
            str(IMAGE_SIZE),
            "--backend",
            "torch",
            "--num-workers",
            "0",
            "--logdir",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), lines
    assert lines[0] == (
        f"Error: {inputs.model}: the model has 5 outputs but {categories} names 4 classes; "
        "is this the right categories file?"
    )
    assert not out.exists() and not list(tmp_path.glob("run_log_*.json"))


def test_mapping_that_does_not_cover_the_classes(inputs: Inputs, tmp_path: Path) -> None:
    mapping = tmp_path / "mapping.json"
    mapping.write_text(json.dumps({"cervid": ["deer", "elk"], "cow": ["cow"]}), encoding="utf-8")
    out, probs = tmp_path / "merged.json", tmp_path / "probs.csv.gz"
    result = CliRunner().invoke(
        cli,
        [
            "-q",
            "run",
            str(inputs.detections),
            str(inputs.model),
            "--output-json",
            str(out),
            "--images-dir",
            str(inputs.images),
            "--classifier-categories",
            str(inputs.categories),
            "--target-mapping",
            str(mapping),
            "--output-csv",
            str(probs),
            "--image-size",
            str(IMAGE_SIZE),
            "--num-workers",
            "0",
            "--logdir",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), lines
    assert "bear" in lines[0] and "coyote" in lines[0]
    assert not out.exists() and not probs.exists() and not list(tmp_path.glob("run_log_*.json"))


# (g) help


def test_help_lists_options() -> None:
    result = CliRunner().invoke(cli, ["run", "--help"])
    assert result.exit_code == 0
    for option in (
        "--output-json",
        "--images-dir",
        "--threshold",
        "--square-crops",
        "--classifier-categories",
        "--target-mapping",
        "--output-csv",
        "--save-crops",
        "--classifier-name",
        "--classification-threshold",
        "--typical-confidence-threshold",
        "--image-size",
        "--batch-size",
        "--num-workers",
        "--backend",
        "--jpeg-roundtrip / --no-jpeg-roundtrip",
        "--logdir",
        "Example:",
    ):
        assert option in result.output, option


def test_help_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from megaclassifier.cli import cli\n"
        "try:\n"
        "    cli.main(['run', '--help'], prog_name='megaclassifier')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in ('torch', 'onnxruntime', 'torchvision', 'pandas') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "--target-mapping" in out
    assert out.splitlines()[-1] == "[]"


# (h) --taxonomy and --smooth: the same file as merge --taxonomy, then smooth, on run's own merged output

TAXONOMY_CSV = (
    "name,kingdom,phylum,class,order,family,genus,species,common\n"
    "cervid,animalia,chordata,mammalia,cetartiodactyla,cervidae,,,deer family\n"
    "cow,animalia,chordata,mammalia,cetartiodactyla,bovidae,bos,taurus,domestic cattle\n"
    "other,,,,,,,,other\n"
)


def test_run_smooth_equals_smooth_on_run_output(inputs: Inputs, run_w0: Outputs, tmp_path: Path) -> None:
    from megadetector.postprocessing.validate_batch_results import (
        ValidateBatchResultsOptions,
        validate_batch_results,
    )

    taxonomy = tmp_path / "taxonomy.csv"
    taxonomy.write_text(TAXONOMY_CSV, encoding="utf-8")
    plain = run_once(
        inputs, tmp_path / "plain", "--exact", "--backend", "torch", "--num-workers", 0, "--taxonomy", taxonomy
    )
    smoothed = run_once(
        inputs,
        tmp_path / "smoothed",
        "--exact",
        "--backend",
        "torch",
        "--num-workers",
        0,
        "--taxonomy",
        taxonomy,
        "--smooth",
        "image",
        "--min-detections-to-overwrite-secondary",
        2,
    )
    assert " detections merged, " in smoothed.summary and " relabelled by smoothing, " in smoothed.summary
    descriptions = plain.merged["classification_category_descriptions"]
    assert [d.split(";")[1:] for d in descriptions.values()] == [
        ["mammalia", "cetartiodactyla", "cervidae", "", "", "deer family"],
        ["mammalia", "cetartiodactyla", "bovidae", "bos", "taurus", "domestic cattle"],
        ["", "", "", "", "", "other"],
    ]
    # without --taxonomy and --smooth, run's file is the one it always wrote, and --taxonomy adds only descriptions
    without = plain.merged
    del without["classification_category_descriptions"]
    for data in (without, run_w0.merged):
        data["info"].pop("classification_completion_time")
    expected_plain = run_w0.merged
    expected_plain["info"].pop("classification_completion_time")
    assert without == expected_plain

    result = invoke(
        ["smooth", plain.json, tmp_path / "chain_smoothed.json", "--min-detections-to-overwrite-secondary", 2]
    )
    assert result.exit_code == 0
    chained = json.loads((tmp_path / "chain_smoothed.json").read_text(encoding="utf-8"))
    got = smoothed.merged
    for data in (chained, got):
        data["info"].pop("classification_completion_time")
        for step in data["info"]["classification_postprocessing"]:
            step.pop("time", None)
    assert got == chained
    changed = [det for image in got["images"] for det in image.get("detections") or [] if "raw_classifications" in det]
    assert changed and f"{len(changed)} relabelled by smoothing" in smoothed.summary
    assert validate_batch_results(got, ValidateBatchResultsOptions())["validation_results"]["errors"] == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--rollup", "0.6"], "Error: --rollup needs --smooth image or --smooth sequence"),
        (["--smooth", "image", "--sequences", "cct.json"], "Error: --sequences needs --smooth sequence"),
    ],
)
def test_smoothing_options_need_smooth(inputs: Inputs, tmp_path: Path, options: list[str], message: str) -> None:
    (tmp_path / "cct.json").write_text("{}", encoding="utf-8")
    result = CliRunner().invoke(
        cli,
        [
            "-q",
            "run",
            str(inputs.detections),
            str(inputs.model),
            "--output-json",
            str(tmp_path / "m.json"),
            "--images-dir",
            str(inputs.images),
            *[str(tmp_path / o) if o == "cct.json" else o for o in options],
        ],
    )
    assert result.exit_code == 2, result.output
    assert result.output.splitlines()[-1] == message
    assert not (tmp_path / "m.json").exists()
