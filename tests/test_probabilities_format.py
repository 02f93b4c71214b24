"""Reading probability CSVs: every value a finite number in [0, 1] or a one-line error (issue 12 item 6)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from megaclassifier.cli import cli
from megaclassifier.errors import InputFileError
from megaclassifier.formats.probabilities import ProbabilityCsvReader

DET = "md_v5a.0.0.pt"


def read_all(path: Path) -> np.ndarray:
    with ProbabilityCsvReader(path) as reader:
        return np.concatenate([values for _, values, _ in reader.iter_chunks(chunk_rows=2)])


@pytest.mark.parametrize(
    ("value", "column"),
    [("nan", "elk"), ("inf", "elk"), ("-inf", "deer"), ("-3", "deer"), ("1.01", "elk"), ("Infinity", "elk")],
)
def test_a_value_that_is_not_a_probability_is_named(tmp_path, value, column):
    path = tmp_path / "probs.csv"
    row = "0.5,{v}" if column == "elk" else "{v},0.5"
    path.write_text("path,deer,elk\na,0.5,0.5\n\nb,0.25,0.75\nc," + row.format(v=value) + "\n")
    with pytest.raises(InputFileError) as info:
        read_all(path)
    assert str(info.value) == (
        f"{path}: line 5 column '{column}': '{value}' is not a probability (a finite number from 0 to 1)"
    )


def test_rounding_within_the_tolerance_is_accepted(tmp_path):
    path = tmp_path / "probs.csv"
    path.write_text("path,deer,elk\na,1.00000006,-0.00000001\nb,0,1\n")
    assert read_all(path).tolist() == [[1.00000006, -0.00000001], [0.0, 1.0]]


@pytest.fixture
def merge_files(tmp_path):
    md = {
        "info": {"detector": DET},
        "detection_categories": {"1": "animal"},
        "images": [{"file": "a.jpg", "detections": [{"category": "1", "conf": 0.9, "bbox": [0.1, 0.1, 0.2, 0.2]}]}],
    }
    (tmp_path / "md.json").write_text(json.dumps(md))
    (tmp_path / "labels.json").write_text(json.dumps({"0": "deer", "1": "elk"}))
    return tmp_path


@pytest.mark.parametrize("value", ["inf", "nan", "-3"])
def test_merge_refuses_bad_numbers_and_writes_nothing(merge_files, value):
    csv = merge_files / "probs.csv"
    csv.write_text(f"path,deer,elk\na.jpg___crop00_{DET}.jpg,0.5,{value}\n")
    out = merge_files / "out.json"
    result = CliRunner().invoke(
        cli,
        [
            "-q",
            "merge",
            str(csv),
            str(merge_files / "labels.json"),
            "--output-json",
            str(out),
            "--detection-json",
            str(merge_files / "md.json"),
            "--classifier-name",
            "c",
        ],
    )
    assert result.exit_code == 1
    assert result.output == (
        f"Error: {csv}: line 2 column 'elk': '{value}' is not a probability (a finite number from 0 to 1)\n"
    )
    assert not out.exists()


@pytest.mark.parametrize("value", ["inf", "nan", "-3"])
def test_aggregate_refuses_bad_numbers_and_writes_nothing(tmp_path, value):
    csv = tmp_path / "probs.csv"
    csv.write_text(f"path,deer,elk\nx.jpg___crop00_{DET}.jpg,{value},0.5\n")
    (tmp_path / "map.json").write_text(json.dumps({"cervid": ["deer", "elk"]}))
    out = tmp_path / "out.csv"
    result = CliRunner().invoke(
        cli,
        [
            "-q",
            "aggregate",
            str(csv),
            "-t",
            str(tmp_path / "map.json"),
            "-o",
            str(out),
            "-i",
            str(tmp_path / "index.json"),
        ],
    )
    assert result.exit_code == 1
    assert result.output == (
        f"Error: {csv}: line 2 column 'deer': '{value}' is not a probability (a finite number from 0 to 1)\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.json", "probs.csv"]


def test_merge_and_aggregate_outputs_under_a_file_are_one_line(merge_files):
    csv = merge_files / "probs.csv"
    csv.write_text(f"path,deer,elk\na.jpg___crop00_{DET}.jpg,0.5,0.5\n")
    (merge_files / "map.json").write_text(json.dumps({"cervid": ["deer", "elk"]}))
    (merge_files / "file").write_text("x")
    out = merge_files / "file" / "out.json"
    result = CliRunner().invoke(
        cli,
        ["-q", "merge", str(csv), str(merge_files / "labels.json"), "--output-json", str(out),
         "--detection-json", str(merge_files / "md.json"), "--classifier-name", "c"],
    )  # fmt: skip
    assert (result.exit_code, result.output) == (
        1,
        f"Error: {out}: cannot write in {out.parent} (a part of the path is a file, not a folder)\n",
    )
    out_csv = merge_files / "file" / "out.csv"
    result = CliRunner().invoke(
        cli, ["-q", "aggregate", str(csv), "-t", str(merge_files / "map.json"), "-o", str(out_csv),
              "-i", str(merge_files / "index.json")],
    )  # fmt: skip
    assert (result.exit_code, result.output) == (
        1,
        f"Error: {out_csv}: cannot write in {out_csv.parent} (a part of the path is a file, not a folder)\n",
    )
    assert not (merge_files / "index.json").exists()
