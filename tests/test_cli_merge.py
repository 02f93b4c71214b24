"""CLI tests of ``megaclassifier merge``: flags, exit codes, exact messages, no torch import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from megaclassifier.cli import cli
from megaclassifier.cli.merge import _expand_datasets

DETECTOR = "md_v5a.0.0.pt"


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """A detections file with two datasets, a 3-class label index and a CSV."""

    def det(conf: float) -> dict:
        return {"category": "1", "conf": conf, "bbox": [0.1, 0.2, 0.3, 0.4]}

    md = {
        "info": {"format_version": "1.4", "detector": DETECTOR},
        "detection_categories": {"1": "animal"},
        "images": [
            {"file": "ds1/a.jpg", "detections": [det(0.9), det(0.2)]},
            {"file": "ds2/b.jpg", "detections": [det(0.8)]},
            {"file": "ds3/c.jpg", "detections": [det(0.7)]},
        ],
    }
    rows = [
        f"ds1/a.jpg___crop00_{DETECTOR}.jpg,0.5,0.25,0.25",
        f"ds2/b.jpg___crop00_{DETECTOR}.jpg,0.1,0.3,0.6",
        f"ds3/c.jpg___crop00_{DETECTOR}.jpg,0.05,0.9,0.05",
        f"ds9/z.jpg___crop00_{DETECTOR}.jpg,0.05,0.9,0.05",
    ]
    paths = {
        "md": tmp_path / "md.json",
        "csv": tmp_path / "probs.csv",
        "labels": tmp_path / "labels.json",
        "out": tmp_path / "final.json",
    }
    paths["md"].write_text(json.dumps(md), encoding="utf-8")
    paths["csv"].write_text("path,cervid,cow,other\n" + "\n".join(rows) + "\n", encoding="utf-8")
    paths["labels"].write_text(json.dumps({"0": "cervid", "1": "cow", "2": "other"}), encoding="utf-8")
    return paths


def invoke(files: dict[str, Path], *extra: str, quiet: bool = True):
    args = ["-q"] if quiet else []
    args += [
        "merge",
        str(files["csv"]),
        str(files["labels"]),
        "--output-json",
        str(files["out"]),
        "--classifier-name",
        "my_classifier",
        "--detection-json",
        str(files["md"]),
        *extra,
    ]
    return CliRunner().invoke(cli, args)


def classifications(files: dict[str, Path]) -> dict[str, list | None]:
    out = json.loads(files["out"].read_text())
    return {im["file"]: im["detections"][0].get("classifications") for im in out["images"]}


def test_merge_writes_spec_fragment_and_summary(files: dict[str, Path]) -> None:
    result = invoke(files)
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "1 rows matched no detection and were skipped, e.g.:",
        f"  'ds9/z.jpg___crop00_{DETECTOR}.jpg': image 'ds9/z.jpg' is not in the detections file",
        f"Wrote merged classification/detection results to {files['out']}: "
        "3 detections classified from 4 rows, 1 rows matched no detection",
    ]
    assert classifications(files) == {
        "ds1/a.jpg": [["0", 0.5], ["1", 0.25], ["2", 0.25]],
        "ds2/b.jpg": [["2", 0.6], ["1", 0.3], ["0", 0.1]],
        "ds3/c.jpg": [["1", 0.9]],
    }
    out = json.loads(files["out"].read_text())
    assert "classifications" not in out["images"][0]["detections"][1]
    assert out["classification_categories"] == {"0": "cervid", "1": "cow", "2": "other"}
    assert out["info"]["classifier"] == "my_classifier"
    # no --typical-confidence-threshold: MegaDetector's typical 0.75, Timelapse's default threshold
    assert out["info"]["classifier_metadata"] == {"typical_classification_threshold": 0.75}


def test_short_flags_threshold_and_typical(files: dict[str, Path]) -> None:
    args = [
        "-q",
        "merge",
        str(files["csv"]),
        str(files["labels"]),
        "-o",
        str(files["out"]),
        "-n",
        "clf",
        "-j",
        str(files["md"]),
        "-t",
        "0.2",
        "--typical-confidence-threshold",
        "0.75",
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    out = json.loads(files["out"].read_text())
    assert out["info"]["classifier_metadata"] == {"typical_classification_threshold": 0.75}
    assert classifications(files)["ds1/a.jpg"] == [["0", 0.5], ["1", 0.25], ["2", 0.25]]
    assert classifications(files)["ds2/b.jpg"] == [["2", 0.6], ["1", 0.3]]


def test_typical_classification_threshold_alias(files: dict[str, Path]) -> None:
    result = invoke(files, "--typical-classification-threshold", "0.6")
    assert result.exit_code == 0, result.output
    assert json.loads(files["out"].read_text())["info"]["classifier_metadata"] == {
        "typical_classification_threshold": 0.6
    }


@pytest.mark.parametrize(
    "flags",
    [
        ["-d", "ds1", "ds2"],
        ["-d", "ds1", "-d", "ds2"],
        ["--datasets", "ds1", "ds2", "-t", "0.1"],
        ["--datasets=ds1", "-d", "ds2"],
    ],
)
def test_datasets(files: dict[str, Path], flags: list[str]) -> None:
    result = invoke(files, *flags)
    assert result.exit_code == 0, result.output
    assert list(classifications(files)) == ["ds1/a.jpg", "ds2/b.jpg"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["-d", "a", "b", "-t", "1"], ["-d", "a", "-d", "b", "-t", "1"]),
        (["x", "--datasets", "a", "b"], ["x", "--datasets", "a", "--datasets", "b"]),
        (["-d", "a", "--", "b"], ["-d", "a", "--", "b"]),
        (["-n", "x", "-d"], ["-n", "x", "-d"]),
        (["--datasets=a", "b"], ["--datasets=a", "b"]),
    ],
)
def test_expand_datasets(args: list[str], expected: list[str]) -> None:
    assert _expand_datasets(args) == expected


def test_max_classifications(files: dict[str, Path]) -> None:
    result = invoke(files, "--max-classifications", "1")
    assert result.exit_code == 0, result.output
    assert classifications(files) == {"ds1/a.jpg": [["0", 0.5]], "ds2/b.jpg": [["2", 0.6]], "ds3/c.jpg": [["1", 0.9]]}


def test_output_without_folder(files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    files = {**files, "out": Path("bare.json")}
    result = invoke(files)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "bare.json").is_file()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["--max-classifications", "0"],
            "Error: Invalid value for '--max-classifications': 0 is not in the range x>=1.",
        ),
        (["-t", "1.5"], "Error: Invalid value for '-t' / '--threshold': 1.5 is not in the range 0<=x<=1."),
        (["--label", "middle"], "Error: Invalid value for '--label': 'middle' is not one of 'first', 'last'."),
    ],
)
def test_usage_errors(files: dict[str, Path], extra: list[str], message: str) -> None:
    result = invoke(files, *extra)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == message


def test_missing_detection_json_is_usage_error(files: dict[str, Path]) -> None:
    args = ["merge", str(files["csv"]), str(files["labels"]), "-o", str(files["out"]), "-n", "c"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == "Error: Missing option '-j' / '--detection-json'."


def test_data_error_is_one_line_exit_1(files: dict[str, Path]) -> None:
    files["labels"].write_text(json.dumps({"0": "deer", "1": "elk"}), encoding="utf-8")
    result = invoke(files)
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {files['csv']}: none of the 2 class names in {files['labels']} is a column; "
        "was it written with that label index?\n"
    )
    assert not files["out"].exists()


def test_label_needs_label_column(files: dict[str, Path]) -> None:
    result = invoke(files, "--label", "first")
    assert result.exit_code == 1
    assert result.stderr == f'Error: {files["csv"]}: no "label" column, which --label and --relative-conf need\n'


def test_label_only_csv(files: dict[str, Path]) -> None:
    files["csv"].write_text(f"path,label\nds2/b.jpg___crop00_{DETECTOR}.jpg,other\n", encoding="utf-8")
    result = invoke(files)
    assert result.exit_code == 0, result.output
    assert classifications(files) == {"ds1/a.jpg": None, "ds2/b.jpg": [["1000002", 1.0]], "ds3/c.jpg": None}


def test_help_lists_flags() -> None:
    result = CliRunner().invoke(cli, ["merge", "--help"])
    assert result.exit_code == 0
    for flag in (
        "--output-json",
        "--classifier-name",
        "--detection-json",
        "--threshold",
        "--datasets",
        "--typical-confidence-threshold",
        "--typical-classification-threshold",
        "--max-classifications",
        "--label",
        "--relative-conf",
        "megaclassifier merge remapped.csv.gz",
    ):
        assert flag in result.output


NO_TORCH = """
import sys
from megaclassifier.cli import cli
try:
    cli(sys.argv[1:], prog_name="megaclassifier")
except SystemExit as e:
    assert e.code == 0, e.code
heavy = sorted(m for m in ("torch", "torchvision", "onnxruntime") if m in sys.modules)
assert not heavy, heavy
print("ok")
"""


@pytest.mark.parametrize("help_only", [True, False])
def test_merge_does_not_import_torch(files: dict[str, Path], help_only: bool) -> None:
    args = (
        ["merge", "--help"]
        if help_only
        else [
            "-q",
            "merge",
            str(files["csv"]),
            str(files["labels"]),
            "-o",
            str(files["out"]),
            "-n",
            "c",
            "-j",
            str(files["md"]),
        ]
    )
    proc = subprocess.run([sys.executable, "-c", NO_TORCH, *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "ok"
    assert files["out"].exists() != help_only
