"""Fuzzing the file inputs through the CLI (hypothesis): detections JSON, probability CSVs, label files.

Whatever the input:

* no traceback: the command ends with exit 0, 1 or 2 (never another exception);
* a failure is a one-line error (the last line, ``Error: ...``) or a logged
  per-image / per-detection failure of a run that exits 0;
* no output is half-written: each output is absent or complete (valid strict
  JSON, a CSV whose rows all have the header's width), and no temporary file
  is left.
"""

from __future__ import annotations

import csv
import io
import json
import math
import tempfile
from pathlib import Path

import numpy as np
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from megaclassifier.cli import cli

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DET = "md_v5a.0.0.pt"

numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.sampled_from([0, 1, 0.5, -0.0, 1e-300, 1.0000001, 100, 1e9]),
)
json_scalars = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=8))
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)),
    max_leaves=12,
)
file_names = st.one_of(
    st.sampled_from(["a.jpg", "sub/../a.jpg", "../a.jpg", "/etc/passwd", "a.jpg\\..\\..\\x", "", "n\nl.jpg"]),
    st.text(min_size=1, max_size=20),
    st.text(alphabet="ab/.\\", min_size=1, max_size=12),
    st.just("x" * 300),
)
bboxes = st.one_of(st.lists(numbers, min_size=4, max_size=4), json_values)
detections = st.fixed_dictionaries(
    {"category": st.one_of(st.sampled_from(["1", "2", "7"]), json_scalars), "bbox": bboxes},
    optional={"conf": st.one_of(numbers, json_scalars)},
)
images = st.fixed_dictionaries(
    {"file": st.one_of(file_names, json_scalars)},
    optional={"detections": st.one_of(st.lists(detections, max_size=4), json_values), "failure": json_scalars},
)
plausible_detections = st.fixed_dictionaries(
    {"category": st.just("1"), "bbox": st.lists(numbers, min_size=4, max_size=4)},
    optional={"conf": st.floats(0, 1)},
)
plausible_files = st.fixed_dictionaries(  # mostly well-formed: the run gets going, boxes and names vary
    {
        "info": st.just({"detector": DET}),
        "detection_categories": st.just({"1": "animal"}),
        "images": st.lists(
            st.fixed_dictionaries({"file": file_names, "detections": st.lists(plausible_detections, max_size=3)}),
            max_size=4,
        ),
    }
)
detection_files = st.one_of(
    plausible_files,
    st.fixed_dictionaries(
        {"images": st.lists(images, max_size=5)},
        optional={
            "info": st.one_of(
                st.fixed_dictionaries({"detector": st.one_of(st.text(max_size=10), json_scalars)}), json_values
            ),
            "detection_categories": st.one_of(st.just({"1": "animal", "2": "person"}), json_values),
        },
    ),
    json_values,
)


def dump(value: object) -> str:
    """JSON text as another tool might write it: NaN and Infinity included."""
    return json.dumps(value, allow_nan=True)


def strict_json(path: Path) -> object:
    def refuse(name: str) -> None:
        raise AssertionError(f"{path} holds {name}")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)


def check_outcome(result: Result, folder: Path) -> None:
    """No traceback, a one-line error on failure, no temporary file anywhere."""
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{type(result.exception).__name__}: {result.exception}\n{result.output}"
    )
    assert result.exit_code in (0, 1, 2, 3), result.output  # 3: every image failed
    event(f"exit {result.exit_code}")
    if result.exit_code in (1, 3):
        # "\n" and "\r" break lines on a terminal (a form feed in a class name does not)
        errors = [line for line in result.output.replace("\r", "\n").split("\n") if line.startswith("Error: ")]
        assert len(errors) == 1 and result.output.endswith(errors[0] + "\n"), result.output
    leftovers = [p for p in folder.rglob("*") if p.name.endswith((".tmp", ".part", ".check"))]
    assert leftovers == []


def invoke(*args: object) -> Result:
    return CliRunner().invoke(cli, ["-q", *map(str, args)])


def fresh_folder() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="fuzz-")


@SETTINGS
@given(content=st.one_of(detection_files.map(dump), st.text(max_size=40)))
def test_crop_survives_any_detections_file(content: str) -> None:
    with fresh_folder() as name:
        root = Path(name)
        (root / "images").mkdir()
        Image.fromarray(np.full((20, 30, 3), 7, np.uint8)).save(root / "images" / "a.jpg")
        md = root / "md.json"
        md.write_text(content, encoding="utf-8")
        result = invoke("crop", md, root / "crops", "--images-dir", root / "images", "--logdir", root / "logs")
        check_outcome(result, root)
        logs = list((root / "logs").glob("*.json")) if (root / "logs").exists() else []
        if result.exit_code in (0, 3):  # 3: every image failed, and the log says why
            (log_path,) = logs
            log = strict_json(log_path)
            assert isinstance(log, dict)
            assert result.output.splitlines()[-1].endswith(f"see {log_path}")
            assert (
                log["num_new_crops"] == len(list((root / "crops").rglob("*.jpg")))
                if (root / "crops").exists()
                else log["num_new_crops"] == 0
            )
            if result.exit_code == 3:
                assert log["images_failed_download_or_crop"] and log["num_new_crops"] == 0, log
        else:
            assert logs == [] and not (root / "crops").exists()


csv_cells = st.one_of(
    numbers.map(str),
    st.sampled_from(["nan", "inf", "-inf", "Infinity", "", "1e400", "0x1", " 0.5", "1_0"]),
    st.text(max_size=6),
)
label_names = st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=3)


@st.composite
def probability_csvs(draw: st.DrawFn) -> tuple[str, list[str]]:
    """A probability CSV's text (usually well-formed in shape, with random cells) and its class names."""
    names = draw(label_names)
    header = draw(st.one_of(st.just(["path", *names]), st.lists(st.text(max_size=6), max_size=4)))
    files = st.sampled_from([f"a.jpg___crop00_{DET}.jpg", f"b.jpg___crop01_{DET}.jpg", "a.jpg", "x"])
    rows = draw(
        st.lists(st.tuples(files, st.lists(csv_cells, min_size=len(names), max_size=len(names) + 1)), max_size=4)
    )
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for path, cells in rows:
        writer.writerow([path, *cells])
    return out.getvalue(), names


label_files = st.one_of(
    st.just(None),  # the CSV's own names, as a well-formed index-to-name JSON
    json_values.map(dump),
    st.dictionaries(st.sampled_from(["0", "1", "2", "01", "-1"]), st.text(max_size=5), max_size=3).map(dump),
)

MD = {
    "info": {"detector": DET},
    "detection_categories": {"1": "animal"},
    "images": [
        {"file": "a.jpg", "detections": [{"category": "1", "conf": 0.9, "bbox": [0.1, 0.1, 0.2, 0.2]}]},
        {"file": "b.jpg", "detections": [{"category": "1", "conf": 0.5, "bbox": [0, 0, 1, 1]}] * 2},
    ],
}


@SETTINGS
@given(table=probability_csvs(), labels=label_files)
def test_merge_survives_any_csv_and_label_file(table: tuple[str, list[str]], labels: str | None) -> None:
    text, names = table
    with fresh_folder() as name:
        root = Path(name)
        (root / "probs.csv").write_text(text, encoding="utf-8")
        label_text = dump({str(i): n for i, n in enumerate(names)}) if labels is None else labels
        (root / "labels.json").write_text(label_text, encoding="utf-8")
        (root / "md.json").write_text(json.dumps(MD), encoding="utf-8")
        out = root / "out" / "final.json"
        result = invoke(
            "merge",
            root / "probs.csv",
            root / "labels.json",
            "--output-json",
            out,
            "--detection-json",
            root / "md.json",
            "--classifier-name",
            "c",
        )
        check_outcome(result, root)
        if result.exit_code == 0:
            merged = strict_json(out)
            for image in merged["images"]:
                for det in image["detections"]:
                    for _, p in det.get("classifications", []):
                        assert math.isfinite(p) and 0 <= p <= 1
        else:
            assert not out.exists()


mappings = st.one_of(
    st.just(None),  # every class into one target
    json_values.map(dump),
    st.dictionaries(st.text(max_size=4), st.lists(st.text(max_size=6), max_size=3), max_size=3).map(dump),
)


@SETTINGS
@given(table=probability_csvs(), mapping=mappings)
def test_aggregate_survives_any_csv_and_mapping(table: tuple[str, list[str]], mapping: str | None) -> None:
    text, names = table
    with fresh_folder() as name:
        root = Path(name)
        (root / "probs.csv").write_text(text, encoding="utf-8")
        (root / "map.json").write_text(dump({"all": names}) if mapping is None else mapping, encoding="utf-8")
        out, index = root / "out.csv", root / "index.json"
        result = invoke("aggregate", root / "probs.csv", "-t", root / "map.json", "-o", out, "-i", index)
        check_outcome(result, root)
        if result.exit_code == 0:
            with open(out, newline="", encoding="utf-8") as f:
                rows = list(csv.reader(f))
            assert rows and all(len(row) == len(rows[0]) for row in rows)
            values = np.array([[float(v) for v in row[1:]] for row in rows[1:]], dtype=float)
            assert np.isfinite(values).all()
            assert list(strict_json(index).values()) == rows[0][1:]
        else:
            assert not out.exists() and not index.exists()
